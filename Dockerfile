# The civicpulse worker and command line, for docker compose.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY schemas ./schemas
COPY config ./config
RUN pip install --no-cache-dir -e .
ENV CIVICPULSE_DATA_DIR=/var/lib/civicpulse \
    CIVICPULSE_WEB_HOST=0.0.0.0
VOLUME /var/lib/civicpulse
ENTRYPOINT ["civicpulse"]
CMD ["worker"]
