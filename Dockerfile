# syntax=docker/dockerfile:1
#
# chaoscron: one static binary on scratch.
#
#   docker build --build-arg VERSION=v1.2.3 -t chaoscron:v1.2.3 .
#
# The go build line below is parsed and run by deploy/image_test.go (`go test ./deploy`),
# flags and all, on a copy of the build context filtered by .dockerignore, and the result is
# checked to be static: edit the flags here and the test builds what the image would.

ARG GO_VERSION=1.26.8

# The build runs on the builder's own platform and cross-compiles (pure Go, no cgo), so a
# multi-platform build (--platform linux/amd64,linux/arm64) needs no emulation.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
# Set by BuildKit to the platform being built for; empty (the builder's own) without it.
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# CGO_ENABLED=0: static, no libc, so it runs on scratch. -trimpath: no build paths in the
# binary (reproducible). -s -w: no symbol table or DWARF (smaller; stack traces keep function
# names and lines). Time zone data is linked in by cmd/chaoscron (import time/tzdata), so
# agent.timezone works with no /usr/share/zoneinfo in the image.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/chaoscron ./cmd/chaoscron

FROM scratch
# CA certificates and the binary, nothing else: no shell, no libc, no tc (netem is programmed
# over netlink), no zoneinfo (compiled in).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/chaoscron /chaoscron
# So that `kubectl exec <pod> -c chaoscron -- chaoscron journal list` finds the binary: there is
# nothing else to find on this PATH.
ENV PATH=/
# Root, on purpose. The faults need capabilities (NET_ADMIN for netem qdiscs, KILL to signal
# the app's processes), and Kubernetes grants the capabilities in securityContext.capabilities.add
# only to uid 0: a non-root process gets them only through ambient capabilities (which
# Kubernetes does not set) or file capabilities on the binary (which need
# allowPrivilegeEscalation: true, a wider door than the one they open). So the agent runs as
# uid 0 with every other capability dropped, no privilege escalation and a read-only root
# filesystem: see deploy/components/sidecar/container.yaml. Root without CAP_DAC_OVERRIDE cannot
# even read other users' files.
USER 0:0
# /metrics, /healthz, /readyz (agent.listen).
EXPOSE 8000
ENTRYPOINT ["/chaoscron"]
CMD ["run", "-c", "/etc/chaoscron/config.yaml"]
