# The Esper image: one image for every `esper serve NAME` of deploy/ (entry point `esper`).
#
#   docker build -t esper:0.1.0 .
#
# The tag is the project version in pyproject.toml; deploy/ names exactly that tag.

FROM python:3.11.7-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/esper
ENV PATH=/opt/esper/bin:$PATH

WORKDIR /src
COPY requirements.txt ./
# torch comes from the PyTorch CPU index: the CPU wheel a developer installs from local disk
# is not in the build context, and PyPI's torch of the same version is the multi-GB CUDA build.
# `==2.13.0` accepts the index's `2.13.0+cpu`, so the second step keeps it and installs the rest
# of the pinned list (torch's own dependencies included) from PyPI.
RUN torch_pin="$(grep -E '^torch==' requirements.txt)" \
 && test -n "$torch_pin" \
 && pip install --no-deps --index-url https://download.pytorch.org/whl/cpu "$torch_pin" \
 && pip install -r requirements.txt

COPY pyproject.toml README.md ./
COPY generated ./generated
COPY server ./server
COPY clients ./clients
# hatchling is in requirements.txt, so the build needs no isolated environment.
RUN pip install --no-deps --no-build-isolation . \
 && esper --help >/dev/null


FROM python:3.11.7-slim-bookworm

ENV PATH=/opt/esper/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

COPY --from=build /opt/esper /opt/esper

# Servers run as an unprivileged user; their state lives under /var/lib/esper (volumes in deploy/).
# Each server's folder exists in the image so that a fresh named volume mounted on it
# starts out owned by that user (Kubernetes sets fsGroup instead).
RUN groupadd --system --gid 10001 esper \
 && useradd --system --uid 10001 --gid esper --home-dir /var/lib/esper --create-home esper \
 && for name in urza tezzeret urabrask karn tamiyo simic nissa tolaria; do \
      install -d -o esper -g esper "/var/lib/esper/$name"; \
    done
USER 10001:10001
WORKDIR /var/lib/esper

ENTRYPOINT ["esper"]
CMD ["--help"]
