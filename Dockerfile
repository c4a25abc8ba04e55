# One image for every Attune service; docker-compose picks the service by command.
FROM python:3.11-slim AS base
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1
RUN pip install --no-cache-dir uv==0.13.9 && groupadd --gid 10001 attune && useradd --create-home --uid 10001 --gid 10001 attune
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY shared/contracts/pyproject.toml shared/contracts/pyproject.toml
RUN mkdir -p shared/contracts/attune_contracts && touch shared/contracts/attune_contracts/__init__.py \
 && uv sync --frozen --no-default-groups --no-install-workspace --no-install-project
COPY shared shared
COPY services services
COPY cli cli
# --no-default-groups: none of the dependency groups (tests, the development broker and inbox, benchmarks),
# only what the services import.
RUN uv sync --frozen --no-default-groups
ENV PATH="/app/.venv/bin:$PATH"
# Non-root (the Kubernetes manifests also run it with a read-only root filesystem: nothing here writes to /app).
USER 10001:10001
# Overridden per service in docker-compose.yml and deploy/k8s: python -m attune_scheduler | attune_checkins |
# attune_notifier | attune_app
CMD ["python", "-m", "attune_runtime.topic_init"]
