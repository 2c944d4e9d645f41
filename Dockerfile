# One image for the three services; docker-compose.yml runs it three times.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY infra ./infra
COPY reference ./reference
COPY tools ./tools
COPY cli ./cli
RUN pip install --no-cache-dir .
ENV CLEARINGHOUSE_REFERENCE_DIR=/app/reference PYTHONUNBUFFERED=1
ENTRYPOINT ["clearinghouse"]
