# surveybus services on Debian 12 (bookworm-slim), run as a non-root user.
FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential pkg-config librdkafka-dev libmosquitto-dev libjansson-dev \
        libhiredis-dev libssl-dev libmicrohttpd-dev check \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY common common
COPY services services
RUN make all

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        librdkafka1 libmosquitto1 libjansson4 libhiredis0.14 libssl3 libmicrohttpd12 tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /nonexistent --shell /usr/sbin/nologin surveybus
COPY --from=build /src/bin/ /usr/local/bin/
COPY config/surveybus.json /etc/surveybus/surveybus.json
USER surveybus
ENTRYPOINT ["/usr/local/bin/surveybus-dispatcher", "-c", "/etc/surveybus/surveybus.json"]
