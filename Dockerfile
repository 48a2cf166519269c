# The aivbatch image: one image for the API, workers, dispatcher, migrations and the emulator.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir api models worker && touch api/__init__.py models/__init__.py worker/__init__.py \
    && pip install . && pip uninstall -y aivbatch
COPY api ./api
COPY models ./models
COPY worker ./worker
RUN pip install --no-deps .

RUN useradd --create-home --uid 10001 aivbatch
USER aivbatch
# SQLite and embedded servers, for the rare run without PostgreSQL and Redis.
ENV AIVBATCH_DATA_DIR=/home/aivbatch/data
EXPOSE 8000 8765

ENTRYPOINT ["aivbatch"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
