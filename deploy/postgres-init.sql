-- Each service owns its own database.
CREATE DATABASE attune_scheduler;
CREATE DATABASE attune_checkins;
CREATE DATABASE attune_notifier;
CREATE DATABASE attune_app;
