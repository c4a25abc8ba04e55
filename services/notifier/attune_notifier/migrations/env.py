"""Alembic environment: run on a connection handed in by `attune_notifier.adapters.sql.migrate`."""

from __future__ import annotations

from alembic import context

from attune_notifier.adapters.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only the CLI path, which the service does not use
    raise RuntimeError("run migrations through attune_notifier.adapters.sql.migrate(engine)")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  version_table="notifier_alembic_version")
with context.begin_transaction():
    context.run_migrations()
