# The drivetrain operator image: `docker build -t drivetrain:0.1.0 .`
# (deploy/ refers to it as drivetrain:0.1.0; override with `kustomize edit set image`).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Wheels of drivetrain and every dependency, so the final stage needs no compiler or cache.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels drivetrain && rm -rf /wheels
# Non-root, matching runAsUser in deploy/deployment.yaml; the operator writes no files.
USER 65532:65532
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["drivetrain"]
CMD ["operator"]
