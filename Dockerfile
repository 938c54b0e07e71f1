# Build: the same commands CI runs (cargo build --release), on the Rust image.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p latchkey-server --bin latchkey

# Runtime: small, non-root. The binary links SQLite, libpq and OpenSSL
# statically, so the image needs only libc and CA certificates.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --create-home latchkey
COPY --from=build /src/target/release/latchkey /usr/local/bin/latchkey
USER latchkey
WORKDIR /app
ENV BIND=0.0.0.0:8000 \
    LATCHKEY_DATA_DIR=/app/data
EXPOSE 8000
ENTRYPOINT ["latchkey"]
CMD ["serve"]
