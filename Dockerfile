# The image the k8s/ manifests run: CUDA torch, pinned Ray and MLflow, recnas,
# its job files and search spaces. Build from the project root:
#   docker build -t recnas:0.1.0 .
FROM python:3.11.7-slim-bookworm

ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    MLFLOW_DISABLE_TELEMETRY=true

RUN groupadd --gid 1000 recnas \
    && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash recnas

WORKDIR /app
# torch first, from the CUDA index: the layer is large and changes rarely.
RUN pip install --no-cache-dir "torch==2.13.0" --index-url "${TORCH_INDEX}"

COPY pyproject.toml setup.py README.md LICENSE ./
COPY platform/ platform/
COPY search_spaces/ search_spaces/
RUN pip install --no-cache-dir . "psycopg2-binary==2.9.*"

COPY jobs/ jobs/
COPY datasets/ datasets/
RUN chown -R recnas:recnas /app

USER 1000:1000
CMD ["recnas", "--help"]
