# syntax=docker/dockerfile:1
# Build: the runtime dependencies from the hash-pinned lock into a virtual environment.
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY requirements.lock ./
RUN uv venv /opt/venv && uv pip install --python /opt/venv/bin/python --require-hashes -r requirements.lock
COPY pyproject.toml README.md alembic.ini ./
COPY src ./src
COPY migrations ./migrations
RUN uv pip install --python /opt/venv/bin/python --no-deps -e .

# Run: the same environment and sources, as an unprivileged user.
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 crm && mkdir /data && chown crm /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CRM_DATA_DIR=/data/postgres
USER crm
VOLUME ["/data"]
EXPOSE 8000
# With CRM_DATABASE_URL set it uses that server; without, an embedded PostgreSQL in /data.
CMD ["sh", "-c", "crm-api migrate && exec crm-api serve --host 0.0.0.0 --port 8000 --workers ${CRM_WORKERS:-2}"]
