# The broker image. Bun runs the TypeScript sources directly: no build step.
# Stage "install" installs the production dependencies from the lockfile;
# stage "runtime" takes them and only the sources the broker imports. Every
# line here is replayed by deploy/test/dockerfile-replay.test.ts.
ARG BUN_IMAGE=oven/bun:1.4.5-slim

FROM ${BUN_IMAGE} AS install
WORKDIR /app
# The lockfile wants the manifests of the kept workspaces and of the ones they
# depend on, dev dependencies included (client, testkit): manifests only.
COPY package.json bun.lock ./
# The lockfile's patched dependencies: bun install applies them.
COPY patches patches/
COPY apps/broker/package.json apps/broker/
COPY packages/client/package.json packages/client/
COPY packages/db/package.json packages/db/
COPY packages/protocol/package.json packages/protocol/
COPY packages/testkit/package.json packages/testkit/
# --ignore-scripts: the root postinstall prepares the embedded-mode template
# from sources this stage does not have (an image runs on DATABASE_URL).
# --linker hoisted: a single node_modules for the next stage to copy.
RUN bun install --frozen-lockfile --production --ignore-scripts --linker hoisted

FROM ${BUN_IMAGE} AS runtime
WORKDIR /app
# DATA_DIR only holds a generated admin token when ADMIN_TOKEN is unset; the
# image's user cannot write to /app.
ENV NODE_ENV=production \
    DATA_DIR=/tmp/switchboard
COPY --from=install /app/node_modules node_modules
COPY apps/broker/package.json apps/broker/
COPY apps/broker/src apps/broker/src
COPY packages/db/package.json packages/db/
COPY packages/db/src packages/db/src
COPY packages/db/drizzle packages/db/drizzle
COPY packages/protocol/package.json packages/protocol/
COPY packages/protocol/src packages/protocol/src
# Last, so a new commit rebuilds no layer above.
ARG GIT_SHA=
ENV GIT_SHA=${GIT_SHA}
# The unprivileged user the Bun images ship (uid 1000).
USER bun
EXPOSE 7900
STOPSIGNAL SIGTERM
# Where the broker listens: HOST when it names one address, loopback when it
# listens on all of them (the default).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD bun -e "const h = process.env.HOST || '0.0.0.0'; const host = h === '0.0.0.0' || h === '::' ? '127.0.0.1' : h.includes(':') ? '[' + h + ']' : h; fetch('http://' + host + ':' + (process.env.BROKER_PORT || 7900) + '/health').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# The entry file itself, not a package script: SIGTERM reaches the broker.
CMD ["bun", "apps/broker/src/index.ts"]
