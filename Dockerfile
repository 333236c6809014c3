# CPU image (default):  docker build -t inferno .
# CUDA image:           docker build -t inferno:cuda \
#                         --build-arg RUNTIME_BASE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 \
#                         --build-arg ORT_INSTALL=cuda12 .
# Run:  docker run --rm -p 8080:8080 -v $PWD/models:/models -v inferno-data:/data [--gpus all] inferno
# Key:  docker run --rm -v inferno-data:/data inferno security api-key create --user me --name laptop --role admin
ARG RUNTIME_BASE=node:20-bookworm-slim

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc tsconfig.json ./
COPY src ./src
# skip: CPU only (onnxruntime-node ships CPU binaries). cuda12: its installer fetches the CUDA EP binaries.
ARG ORT_INSTALL=skip
RUN npm ci --no-audit --no-fund --onnxruntime-node-install=${ORT_INSTALL} && npm prune --omit=dev

FROM ${RUNTIME_BASE}
# The CUDA base images have no Node.js: take the same build's binary (glibc-linked, works on Ubuntu 24.04).
COPY --from=build /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
ENV NODE_ENV=production \
    INFERNO_HOST=0.0.0.0 \
    INFERNO_PORT=8080 \
    INFERNO_MODELS_DIR=/models \
    INFERNO_DATA_DIR=/data \
    INFERNO_GPU=auto \
    INFERNO_AUTH=true \
    INFERNO_LOG_PRETTY=false
VOLUME ["/models", "/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD node -e "fetch('http://127.0.0.1:8080/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "dist/src/main.cjs"]
CMD ["serve"]
