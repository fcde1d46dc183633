# syntax=docker/dockerfile:1

# ---- build ----
FROM golang:1.26-bookworm AS build
WORKDIR /src

# Download modules first so this layer is cached independently of the source.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -o /out/grace ./cmd/grace

# ---- runtime ----
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/grace /grace
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/grace"]
CMD ["serve"]
