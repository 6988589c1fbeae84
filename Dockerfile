# syntax=docker/dockerfile:1
# The llmos server image (docs/deploy.md). CPU-only by default:
#
#   docker build -t llmos .
#   docker build -t llmos:ml --build-arg LLMOS_EXTRAS=postgres,ml .       # + torch (minilm:l6 needs none)
#   docker build -t llmos:native --build-arg LLAMA_CMAKE_ARGS="-DGGML_NATIVE=ON" .   # this CPU only
#   docker run -p 8470:8470 -v llmos-home:/data -e LLMOS_ADMIN_KEY=sk-llmos-... llmos
#
# llama.cpp is compiled once, in the builder stage, into a llama-cpp-python wheel; the runtime
# stage gets the finished virtual environment and no compiler. The default model is not in the
# image: the server pulls it into LLMOS_HOME (the /data volume) on its first start.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PATH=/opt/llmos/bin:$PATH
RUN python -m venv /opt/llmos

# llama-cpp-python, built from source with the options scripts/setup uses: ggml's AMX kernels
# left out (they die with SIGILL on VMs that advertise AMX without its tile state), only llama and
# ggml built (no multimodal library, no unused "common" library: no-common.cmake, no examples,
# tools or tests). By default GGML_NATIVE=OFF (with AVX2/FMA/F16C on x86-64): the image runs on
# any x86-64-v3 (or arm64) CPU, not only on the one that built it. LLAMA_CMAKE_ARGS replaces
# those defaults (-DGGML_NATIVE=ON for the building CPU, -DGGML_CUDA=on for a CUDA base image).
ARG LLAMA_CPP_PYTHON_VERSION=0.3.36
ARG LLAMA_CMAKE_ARGS=""
COPY scripts/cmake/no-common.cmake /src/scripts/cmake/
RUN no_amx=""; portable="-DGGML_NATIVE=OFF"; \
    if [ "$(uname -m)" = "x86_64" ]; then \
      no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"; \
      portable="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"; \
    fi; \
    CMAKE_ARGS="-DCMAKE_C_FLAGS='${no_amx}' -DCMAKE_CXX_FLAGS='${no_amx}' -DLLAVA_BUILD=OFF -DCMAKE_PROJECT_llama.cpp_INCLUDE=/src/scripts/cmake/no-common.cmake -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF ${LLAMA_CMAKE_ARGS:-${portable}}" \
      pip wheel --no-deps -w /wheels "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}" \
 && pip install --no-deps /wheels/llama_cpp_python-*.whl

# llmos itself with the extras chosen at build time (postgres: psycopg and pgvector for
# LLMOS_DATABASE_URL=postgresql+psycopg://...; ml: torch and sentence-transformers, for the
# sentence-transformers models llama.cpp cannot run; gpu: NVML).
ARG LLMOS_EXTRAS=postgres
COPY pyproject.toml README.md /src/
COPY src /src/src
RUN if [ -n "${LLMOS_EXTRAS}" ]; then pip install "/src[${LLMOS_EXTRAS}]"; else pip install /src; fi \
 && pip check


FROM ${PYTHON_IMAGE} AS runtime
ARG LLMOS_EXTRAS=postgres
LABEL org.opencontainers.image.title="llmos" \
      org.opencontainers.image.description="An operating system for language models: OpenAI-compatible server, registry, scheduler, llama.cpp engine" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.llmos.extras="${LLMOS_EXTRAS}"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# tini: PID 1 that forwards SIGTERM to the server (which drains) and reaps the model workers;
# libgomp1: llama.cpp's OpenMP threads.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 llmos \
 && useradd --system --uid 10001 --gid llmos --home-dir /data --no-create-home --shell /usr/sbin/nologin llmos \
 && mkdir -p /data \
 && chown llmos:llmos /data
COPY --from=builder /opt/llmos /opt/llmos
COPY --chmod=0755 deploy/docker-entrypoint.sh /usr/local/bin/llmos-entrypoint
ENV PATH=/opt/llmos/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/data \
    LLMOS_HOME=/data \
    LLMOS_HOST=0.0.0.0 \
    LLMOS_PORT=8470 \
    LLMOS_LOG_FORMAT=json
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8470
# /health answers as soon as the server listens, also while the first start pulls the model.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('LLMOS_PORT', '8470'), timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/llmos-entrypoint"]
CMD ["serve"]
