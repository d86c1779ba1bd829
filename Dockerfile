# opsportal: one image for every process of the production layout (docker-compose.yml
# gives each its command): gunicorn -c opsportal/gunicorn.conf.py for HTTP, runportal
# --no-worker for the WebSockets under /ws/ (it also applies the migrations), the Celery
# worker and beat. The default command, runportal --no-worker, serves HTTP and WebSockets in one process.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=opsportal.settings \
    OPSPORTAL_VAR_DIR=/app/var

WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

# Only what the portal runs from: never var/ (secret key, SQLite), .env or .venv.
COPY manage.py ./
COPY opsportal ./opsportal
COPY apps ./apps
COPY templates ./templates
COPY static ./static

RUN useradd --system --uid 10001 --home-dir /app --no-create-home opsportal \
    && mkdir -p /app/var \
    && chown opsportal:opsportal /app/var
USER opsportal

EXPOSE 8000
# Liveness: /healthz answers while the process serves, whatever the Host header and HTTPS settings,
# and touches no dependency (a database outage must not get a healthy web process replaced).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["python", "manage.py", "runportal", "--host", "0.0.0.0", "--port", "8000", "--no-worker"]
