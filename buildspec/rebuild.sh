#!/usr/bin/env bash
# patchprop's one rebuild script: run by the CodeBuild buildspec (buildspec.yml) in AWS and by
# the local CodeBuild of `patchprop local` (cli/patchprop_cli/local_builds.py), so a local run
# tests what runs in AWS.
#
# Rebuilds a dependent image on its base pinned by digest, records the base in the image's
# manifest annotations (org.opencontainers.image.base.name / .base.digest), pushes it and
# writes RESULT_FILE: {"image": TARGET_IMAGE, "digest": "sha256:…", "base": BASE_IMAGE}.
#
# Inputs (environment):
#   BASE_IMAGE             registry/repo@sha256:…   the new base, pinned (required)
#   BASE_IMAGE_NAME        registry/repo:tag        the base as tracked (required)
#   BASE_IMAGE_DIGEST      sha256:…                 (required, must match BASE_IMAGE)
#   TARGET_IMAGE           registry/repo:tag        what to push (required)
#   PATCHPROP_REBUILD_ID   correlation id           (required)
#   BUILD_ARG_<NAME>=value one --build-arg NAME=value each
#   CONTEXT_DIR            build context            (default .)
#   DOCKERFILE             relative to CONTEXT_DIR unless absolute (default Dockerfile)
#   RESULT_FILE            (default ./patchprop-result.json)
#   BUILDER                buildah | docker         (default buildah if on PATH, else docker)
#   BUILDAH_STORAGE_DRIVER (default vfs)   BUILDAH_ISOLATION (default chroot)
#   BUILDAH_ROOT, BUILDAH_RUNROOT  optional storage directories (buildah --root / --runroot)
#   REGISTRY_TLS_VERIFY    true | false             (default true; false for local http registries)
#
# The dependent's Dockerfile declares `ARG BASE_IMAGE` and starts `FROM ${BASE_IMAGE}`.
set -euo pipefail

log() { printf '[patchprop] %s\n' "$*"; }
die() { printf '[patchprop] ERROR: %s\n' "$*" >&2; exit "${2:-1}"; }

for name in BASE_IMAGE BASE_IMAGE_NAME BASE_IMAGE_DIGEST TARGET_IMAGE PATCHPROP_REBUILD_ID; do
  [[ -n ${!name:-} ]] || die "$name is not set: it is one of the variables patchprop passes to every rebuild" 2
done
[[ $BASE_IMAGE == *"@$BASE_IMAGE_DIGEST" ]] \
  || die "BASE_IMAGE ($BASE_IMAGE) is not pinned to BASE_IMAGE_DIGEST ($BASE_IMAGE_DIGEST)" 2

CONTEXT_DIR=${CONTEXT_DIR:-.}
DOCKERFILE=${DOCKERFILE:-Dockerfile}
[[ $DOCKERFILE == /* ]] || DOCKERFILE="$CONTEXT_DIR/$DOCKERFILE"
RESULT_FILE=${RESULT_FILE:-./patchprop-result.json}
REGISTRY_TLS_VERIFY=${REGISTRY_TLS_VERIFY:-true}
BUILDAH_STORAGE_DRIVER=${BUILDAH_STORAGE_DRIVER:-vfs}
BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
if [[ -z ${BUILDER:-} ]]; then
  if command -v buildah >/dev/null 2>&1; then BUILDER=buildah; else BUILDER=docker; fi
fi
case $BUILDER in
  buildah) command -v buildah >/dev/null 2>&1 || die "buildah not found: install it with apt-get install buildah" 127 ;;
  docker) command -v docker >/dev/null 2>&1 \
    || die "neither buildah nor docker found: install buildah with apt-get install buildah" 127 ;;
  *) die "BUILDER must be buildah or docker, not '$BUILDER'" 2 ;;
esac
case $REGISTRY_TLS_VERIFY in true | false) ;; *) die "REGISTRY_TLS_VERIFY must be true or false" 2 ;; esac

[[ -d $CONTEXT_DIR ]] || die "build context $CONTEXT_DIR not found"
[[ -f $DOCKERFILE ]] || die "Dockerfile $DOCKERFILE not found in the build context"

log "rebuild $PATCHPROP_REBUILD_ID: $TARGET_IMAGE on $BASE_IMAGE_NAME pinned to $BASE_IMAGE_DIGEST"
log "builder $BUILDER, context $CONTEXT_DIR, Dockerfile $DOCKERFILE"

# Build arguments: the pinned base, then one per BUILD_ARG_<NAME> variable.
build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
while IFS= read -r var; do
  [[ $var == BUILD_ARG_?* ]] || continue
  build_args+=(--build-arg "${var#BUILD_ARG_}=${!var}")
  log "build argument ${var#BUILD_ARG_}"
done < <(compgen -e | sort)

# The base goes in the manifest's annotations (where `skopeo inspect --raw` and registries show
# it) and in the config's labels (where `docker inspect` shows it).
metadata=()
for flag in --annotation --label; do
  metadata+=("$flag" "org.opencontainers.image.base.name=$BASE_IMAGE_NAME")
  metadata+=("$flag" "org.opencontainers.image.base.digest=$BASE_IMAGE_DIGEST")
done

# --- issue-5 hook: verify the base's signature before building on it (not implemented).
# if [[ -n ${PATCHPROP_VERIFY_BASE:-} ]]; then cosign verify ... "$BASE_IMAGE"; fi

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
digest_file="$workdir/digest"

build_with_buildah() {
  local -a storage=(--storage-driver "$BUILDAH_STORAGE_DRIVER")
  [[ -z ${BUILDAH_ROOT:-} ]] || storage+=(--root "$BUILDAH_ROOT")
  [[ -z ${BUILDAH_RUNROOT:-} ]] || storage+=(--runroot "$BUILDAH_RUNROOT")
  log "building"
  # --format oci: a Docker v2s2 manifest has no annotations; an OCI one carries them.
  buildah "${storage[@]}" bud --isolation "$BUILDAH_ISOLATION" --format oci \
    --tls-verify="$REGISTRY_TLS_VERIFY" --pull=missing \
    "${build_args[@]}" "${metadata[@]}" \
    --file "$DOCKERFILE" --tag "$TARGET_IMAGE" "$CONTEXT_DIR"
  # --- issue-5 hooks on the built image (not implemented): SBOM, Trivy scan.
  # if [[ -n ${PATCHPROP_SBOM:-} ]]; then syft ... ; fi
  # if [[ -n ${PATCHPROP_SCAN:-} ]]; then trivy image ... ; fi
  log "pushing $TARGET_IMAGE"
  buildah "${storage[@]}" push --format oci --tls-verify="$REGISTRY_TLS_VERIFY" \
    --digestfile "$digest_file" "$TARGET_IMAGE" "docker://$TARGET_IMAGE"
  # Pushed: drop the local copy (vfs stores every layer in full); the base stays cached.
  buildah "${storage[@]}" rmi "$TARGET_IMAGE" >/dev/null 2>&1 || true
}

build_with_docker() {
  # Needs a BuildKit builder that can push OCI manifests with annotations (the default
  # "docker" driver cannot): a docker-container builder, i.e. CodeBuild's privileged mode.
  # REGISTRY_TLS_VERIFY=false needs the registry listed as insecure in the builder's config.
  docker buildx inspect patchprop >/dev/null 2>&1 \
    || docker buildx create --name patchprop --driver docker-container >/dev/null
  local -a annotations=()
  local i
  for ((i = 0; i < ${#metadata[@]}; i += 2)); do
    if [[ ${metadata[i]} == --annotation ]]; then
      annotations+=(--annotation "manifest:${metadata[i + 1]}")
    else
      annotations+=("${metadata[i]}" "${metadata[i + 1]}")
    fi
  done
  log "building and pushing $TARGET_IMAGE"
  # --provenance=false keeps one image manifest (no attestation index) to annotate and report.
  docker buildx build --builder patchprop --provenance=false --pull \
    "${build_args[@]}" "${annotations[@]}" \
    --output "type=image,name=$TARGET_IMAGE,push=true,oci-mediatypes=true" \
    --metadata-file "$workdir/metadata.json" --file "$DOCKERFILE" "$CONTEXT_DIR"
  grep -o '"containerimage.digest": *"sha256:[0-9a-f]*"' "$workdir/metadata.json" \
    | grep -o 'sha256:[0-9a-f]*' >"$digest_file"
}

"build_with_$BUILDER"

digest=$(<"$digest_file")
[[ $digest == sha256:* ]] || die "the push reported no digest for $TARGET_IMAGE"

# --- issue-5 hook: sign the pushed image by digest (not implemented).
# if [[ -n ${PATCHPROP_COSIGN_KEY:-} ]]; then cosign sign --key "$PATCHPROP_COSIGN_KEY" "${TARGET_IMAGE%:*}@$digest"; fi

mkdir -p "$(dirname "$RESULT_FILE")"
printf '{"image": "%s", "digest": "%s", "base": "%s"}\n' "$TARGET_IMAGE" "$digest" "$BASE_IMAGE" >"$RESULT_FILE"
log "pushed $TARGET_IMAGE as $digest"
log "result written to $RESULT_FILE"
