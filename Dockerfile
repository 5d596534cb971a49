# nerva-xp for cloud GPU boxes (NVIDIA container toolkit) and, as target "cpu", for machines without
# a GPU.   Build: docker build -t nerva-xp .            (GPU image, the default target)
#                 docker build --target cpu -t nerva-xp:cpu .
# Run:   docker run --gpus all -v "$PWD/data:/data" -v "$PWD/out:/out" nerva-xp train --device=cuda ...

# ---- CPU image ----
FROM python:3.12.11-slim-bookworm AS cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/nerva-xp/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY nerva_xp ./nerva_xp
COPY kernels ./kernels
COPY tools/docker ./tools/docker
RUN sh tools/docker/install.sh /opt/nerva-xp cpu /src \
    && useradd --create-home --uid 1000 --user-group nerva \
    && mkdir -p /data /out \
    && chown nerva:nerva /data /out
USER 1000:1000
WORKDIR /out
VOLUME ["/data", "/out"]
ENTRYPOINT ["nerva-xp"]
CMD ["train"]

# ---- GPU image (default) ----
FROM nvidia/cuda:12.9.1-base-ubuntu24.04 AS gpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/nerva-xp/bin:$PATH \
    CUPY_CACHE_DIR=/cache/cupy
# DL3008 (pin apt versions) is ignored: Ubuntu keeps only the current python3 patch release, so a
# pin would break the build later; the image is pinned by its CUDA base tag and exact wheel versions.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY nerva_xp ./nerva_xp
COPY kernels ./kernels
COPY tools/docker ./tools/docker
RUN sh tools/docker/install.sh /opt/nerva-xp gpu /src \
    && useradd --create-home --uid 1001 --user-group nerva \
    && mkdir -p /data /out /cache/cupy \
    && chown -R nerva:nerva /data /out /cache
USER 1001:1001
WORKDIR /out
# /cache/cupy keeps compiled CUDA kernels between runs when mounted as a volume
VOLUME ["/data", "/out", "/cache"]
ENTRYPOINT ["nerva-xp"]
CMD ["train", "--device=cuda"]
