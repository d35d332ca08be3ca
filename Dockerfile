# One image with every Handover program: the hub, the four adapters, the
# operations tools. docker-compose.yml runs one container per program.
FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN bash scripts/install-deps.sh
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHANDOVER_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" --target handover-hub handover-gp \
      handover-nursing handover-social handover-voluntary handover-ctl \
      handover-audit

FROM debian:12
RUN apt-get update \
 && apt-get install -y --no-install-recommends libzmq5 liblmdb0 \
      libprotobuf-c1 libuv1 libyaml-0-2 libsodium23 libjansson4 libcurl4 \
      libhttp-parser2.9 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/handover handover \
 && mkdir -p /var/lib/handover && chown handover /var/lib/handover
COPY --from=build /build/handover-hub /build/handover-gp \
     /build/handover-nursing /build/handover-social /build/handover-voluntary \
     /build/handover-ctl /build/handover-audit /usr/local/bin/
USER handover
WORKDIR /var/lib/handover
