# moonrt in a container: a multi-stage build, a small final image running as a non-root user.
#   docker build -t moonrt .
#   docker run -p 7777:7777/tcp -p 7777:7777/udp -p 7778:7778 moonrt
# Mount your own config and scripts over /srv/moonrt (DEPLOY.md, "Containers").
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin moonrt

# distroless: glibc and CA certificates only, no shell; "nonroot" is uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/moonrt /usr/local/bin/moonrt
WORKDIR /srv/moonrt
COPY config.toml ./config.toml
COPY lua ./lua
USER nonroot
EXPOSE 7777/tcp 7777/udp 7778/tcp 9090/tcp
# `docker stop` sends SIGTERM: every player gets CLOSE 22 within shutdown_grace_ms. To drain
# first (let running games end): `docker kill -s USR2 <container>`, then wait for it to exit.
ENTRYPOINT ["/usr/local/bin/moonrt", "--log-format", "json"]
CMD ["--config", "/srv/moonrt/config.toml"]
