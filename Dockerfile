# One image for every Attune service; docker-compose picks the service by command.
FROM python:3.11-slim AS base
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1
RUN pip install --no-cache-dir uv==0.13.9 && useradd --create-home --uid 10001 attune
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY shared/contracts/pyproject.toml shared/contracts/pyproject.toml
RUN mkdir -p shared/contracts/attune_contracts && touch shared/contracts/attune_contracts/__init__.py \
 && uv sync --frozen --no-dev --no-install-workspace --no-install-project
COPY shared shared
COPY services services
COPY cli cli
RUN uv sync --frozen --no-dev
ENV PATH="/app/.venv/bin:$PATH"
USER attune
# Overridden per service in docker-compose.yml: python -m attune_scheduler | attune_checkins | attune_notifier
CMD ["python", "-m", "attune_runtime.topic_init"]
