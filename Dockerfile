# The ips service image (docker-compose.yml runs it beside PostgreSQL and MinIO).
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
# `npm ci` compiles dist/ (the prepare script); the dev tools are dropped afterwards.
RUN npm ci && npm prune --omit=dev && npm cache clean --force
ENV NODE_ENV=production
EXPOSE 8742
ENTRYPOINT ["node", "bin/ips.js"]
CMD ["serve", "--host", "0.0.0.0"]
