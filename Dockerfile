# CPU image (default):  docker build -t inferno .
# CUDA image:           docker build -t inferno:cuda \
#                         --build-arg RUNTIME_BASE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 \
#                         --build-arg ORT_INSTALL=cuda12 .
# Run:  docker run --rm -p 8080:8080 -v $PWD/models:/models -v inferno-data:/data [--gpus all] inferno
# Key:  docker run --rm -v inferno-data:/data inferno security api-key create --user me --name laptop --role admin
# Node 22 is the LTS line the image runs on (Node 20 reached its end of life in April 2026); the project's
# tests run on Node 20 and 22 alike (engines: >=20).
ARG NODE_BASE=node:22-bookworm-slim
ARG RUNTIME_BASE=${NODE_BASE}

FROM ${NODE_BASE} AS build
# g++, git and patch let npm ci's postinstall patch node-llama-cpp's batch loop (scripts/patch-node-llama-cpp.sh)
# and build its addon with Inferno's thread-pool patch (scripts/build-llama-addon.sh, about 30 s); without
# them the image keeps node-llama-cpp as published.
RUN apt-get update && apt-get install -y --no-install-recommends g++ git patch && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc tsconfig.json ./
COPY scripts/build-llama-addon.sh scripts/patch-node-llama-cpp.sh ./scripts/
COPY patches ./patches
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
# Read at run time: the gRPC service definition, the web console's files, and the two demo models that are
# served while /models holds no model of its own (they live here, not in the models volume).
COPY proto ./proto
COPY console ./console
COPY demo ./demo
# A user of its own, not root; the volumes belong to it. The uid is fixed so that a bind-mounted models or
# data folder can be given to it (chown 10001 ./data). /shared is where deploy/docker-compose.yml mounts the
# replicas' shared data dir: a named volume takes the owner of the folder it is mounted on.
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home inferno \
    && mkdir -p /models /data /shared && chown inferno:inferno /models /data /shared
USER inferno
ENV NODE_ENV=production \
    INFERNO_HOST=0.0.0.0 \
    INFERNO_PORT=8080 \
    INFERNO_MODELS_DIR=/models \
    INFERNO_DATA_DIR=/data \
    INFERNO_GPU=auto \
    INFERNO_AUTH=true \
    INFERNO_LOG_PRETTY=false
VOLUME ["/models", "/data"]
EXPOSE 8080 8081
HEALTHCHECK --interval=30s --timeout=3s CMD node -e "fetch('http://127.0.0.1:8080/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "dist/src/main.cjs"]
CMD ["serve"]
