# The aivbatch image: one image for the API, workers, dispatcher, migrations and the emulator.
# It installs exactly the locked runtime set (requirements/run.txt, every file hash-checked)
# into a venv in a build stage; the image keeps that venv and nothing of the installer.
FROM python:3.12-slim AS build

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1

WORKDIR /src
# Dependencies first, so a code change does not reinstall them. uv is pinned and
# hash-checked by pip; uv then checks every locked package against the lock's hashes.
COPY requirements ./requirements
RUN python -m venv /opt/uv \
    && /opt/uv/bin/pip install --quiet --require-hashes -r requirements/uv.txt \
    && python -m venv --without-pip /opt/aivbatch \
    && /opt/uv/bin/uv pip sync --python /opt/aivbatch/bin/python --require-hashes \
       --compile-bytecode requirements/run.txt
COPY pyproject.toml README.md ./
COPY api ./api
COPY cli ./cli
COPY emulator ./emulator
COPY models ./models
COPY worker ./worker
# The project alone, built by the pinned, hash-checked setuptools of requirements/build.txt.
# Bytecode compiled here: the image sets PYTHONDONTWRITEBYTECODE, so nothing would cache it.
RUN /opt/uv/bin/uv pip install --python /opt/aivbatch/bin/python --no-deps --compile-bytecode \
    --preview-features build-dependency-hashes --require-build-hashes \
    --build-constraints requirements/build.txt .

FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/aivbatch/bin:$PATH

COPY --from=build /opt/aivbatch /opt/aivbatch
WORKDIR /app
RUN useradd --create-home --uid 10001 aivbatch
USER aivbatch
# SQLite and embedded servers, for the rare run without PostgreSQL and Redis.
ENV AIVBATCH_DATA_DIR=/home/aivbatch/data
EXPOSE 8000 8765

ENTRYPOINT ["aivbatch"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
