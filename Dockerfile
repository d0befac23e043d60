# hitl as a container: `hitl serve` on port 8080 as a non-root user.
# Build: docker build -t hitl .      Run with PostgreSQL: docker compose up (see docker-compose.yml)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 hitl \
    && useradd --system --uid 10001 --gid hitl --home-dir /srv/hitl --create-home --shell /usr/sbin/nologin hitl

# Install from a scratch copy of the source, then drop it: only the installed package is left.
WORKDIR /tmp/src
COPY pyproject.toml README.md ./
COPY bot/ bot/
COPY handlers/ handlers/
COPY storage/ storage/
COPY sandbox/ sandbox/
RUN pip install --no-cache-dir . && rm -rf /tmp/src

WORKDIR /srv/hitl
USER 10001:10001
EXPOSE 8080

# No curl in a slim image: the standard library asks /healthz (which checks the database).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

ENTRYPOINT ["hitl"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
