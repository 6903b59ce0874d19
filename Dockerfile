# syntax=docker/dockerfile:1
# lbd in a container: a static binary on distroless "static" (no libc, no
# shell), running as the image's non-root user.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t lbd .
#   docker run --rm -p 3030:3030 -v $PWD/examples/config.json:/etc/lbd/config.json:ro lbd
#
# The admin listener stays on the container's loopback unless you set
# LB_ADMIN_ADDR=0.0.0.0:3031 together with LB_ADMIN_TOKEN (lbd refuses a
# non-loopback admin address without a token); HEALTHCHECK probes it from
# inside the container either way.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/lbd ./cmd/lbd

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/lbd /usr/local/bin/lbd
COPY examples/config.json /etc/lbd/config.json
# 65532 is distroless's "nonroot"; a number, so runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 3030 3031
# No shell or curl in the image: lbd probes its own /healthz (open without the token).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/lbd", "-healthcheck", "http://127.0.0.1:3031/healthz"]
ENTRYPOINT ["/usr/local/bin/lbd"]
CMD ["-config", "/etc/lbd/config.json"]
