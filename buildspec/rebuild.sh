#!/usr/bin/env bash
# patchprop's one rebuild script: run by the CodeBuild buildspec (buildspec.yml) in AWS and by
# the local CodeBuild of `patchprop local` (cli/patchprop_cli/local_builds.py), so a local run
# tests what runs in AWS.
#
# Verifies the base's signature (when a key is given, failing closed), rebuilds a dependent
# image on its base pinned by digest, records the base in the image's manifest annotations
# (org.opencontainers.image.base.name / .base.digest), pushes it, scans what was pushed with
# Trivy (JSON report, the base's report, a CycloneDX SBOM), uploads the reports, signs the
# image, and writes RESULT_FILE (one line of JSON):
#   {"image": TARGET_IMAGE, "digest": "sha256:…", "base": BASE_IMAGE, "scanned": true|false,
#    "report": URI, "base_report": URI, "sbom": URI}   (URIs only when scanned)
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
#   PROVENANCE             buildx --provenance value, docker builder only (default mode=max)
# Optional steps, each off unless its switch is set or its tool is installed:
#   COSIGN_VERIFY_KEY      cosign key (file, awskms:///…, …): the base must verify, or no build
#   COSIGN_VERIFY_IGNORE_TLOG=true  verify without the transparency log (bases signed without it)
#   SCAN                   auto (scan if trivy is installed) | required (fail without trivy) | off
#   PATCHPROP_BASE_VEX     a VEX document of the base (trivy --vex), applied to both scans
#   REPORTS_URI            s3://bucket/prefix: reports go to <prefix>/<rebuild id>/ (default:
#                          kept next to RESULT_FILE, named by file:// URIs)
#   COSIGN_KMS_KEY         KMS key (ARN or awskms:///…) to sign the pushed image by digest
#   COSIGN_TLOG_UPLOAD     true to record the signature in the public Rekor log (default false)
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
SCAN=${SCAN:-auto}
case $SCAN in auto | required | off) ;; *) die "SCAN must be auto, required or off, not '$SCAN'" 2 ;; esac
[[ -z ${REPORTS_URI:-} || $REPORTS_URI == s3://?* ]] || die "REPORTS_URI must be s3://bucket/prefix" 2
needs() { command -v "$1" >/dev/null 2>&1 || die "$2" 127; }
[[ $SCAN != required ]] || needs trivy "SCAN=required but trivy is not installed in the build image"
[[ -z ${COSIGN_VERIFY_KEY:-}${COSIGN_KMS_KEY:-} ]] \
  || needs cosign "COSIGN_VERIFY_KEY or COSIGN_KMS_KEY is set but cosign is not installed"
[[ -z ${REPORTS_URI:-} ]] || needs aws "REPORTS_URI is set but the aws CLI is not installed"

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

# Fail closed: with a key configured, nothing is built on a base that does not verify.
if [[ -n ${COSIGN_VERIFY_KEY:-} ]]; then
  log "verifying the signature of $BASE_IMAGE"
  verify=(--key "$COSIGN_VERIFY_KEY")
  [[ $REGISTRY_TLS_VERIFY == true ]] || verify+=(--allow-insecure-registry)
  [[ ${COSIGN_VERIFY_IGNORE_TLOG:-false} != true ]] || verify+=(--insecure-ignore-tlog=true)
  cosign verify "${verify[@]}" "$BASE_IMAGE" >/dev/null \
    || die "the signature of $BASE_IMAGE does not verify with $COSIGN_VERIFY_KEY: not building on it" 4
fi

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
  log "pushing $TARGET_IMAGE"
  buildah "${storage[@]}" push --format oci --tls-verify="$REGISTRY_TLS_VERIFY" \
    --digestfile "$digest_file" "$TARGET_IMAGE" "docker://$TARGET_IMAGE"
  # The local copy stays: removing it while another build commits on the same storage makes
  # that build fail ("layer not known"). The local builder empties its storage when it stops.
}

build_with_docker() {
  # Needs a BuildKit builder that can push OCI manifests with annotations (the default
  # "docker" driver cannot): a docker-container builder, i.e. CodeBuild's privileged mode.
  # REGISTRY_TLS_VERIFY=false needs the registry listed as insecure in the builder's config.
  docker buildx inspect patchprop >/dev/null 2>&1 \
    || docker buildx create --name patchprop --driver docker-container >/dev/null
  local -a annotations=()
  local i provenance=${PROVENANCE:-mode=max} level=manifest
  # With provenance BuildKit pushes an index (the image and its attestation): annotate both.
  [[ $provenance == false ]] || level=index,manifest
  for ((i = 0; i < ${#metadata[@]}; i += 2)); do
    if [[ ${metadata[i]} == --annotation ]]; then
      annotations+=(--annotation "$level:${metadata[i + 1]}")
    else
      annotations+=("${metadata[i]}" "${metadata[i + 1]}")
    fi
  done
  log "building and pushing $TARGET_IMAGE"
  # SLSA provenance as an attestation in the pushed index (--provenance=false: a plain manifest).
  docker buildx build --builder patchprop --provenance="$provenance" --pull \
    "${build_args[@]}" "${annotations[@]}" \
    --output "type=image,name=$TARGET_IMAGE,push=true,oci-mediatypes=true" \
    --metadata-file "$workdir/metadata.json" --file "$DOCKERFILE" "$CONTEXT_DIR"
  grep -o '"containerimage.digest": *"sha256:[0-9a-f]*"' "$workdir/metadata.json" \
    | grep -o 'sha256:[0-9a-f]*' >"$digest_file"
}

"build_with_$BUILDER"

digest=$(<"$digest_file")
[[ $digest == sha256:* ]] || die "the push reported no digest for $TARGET_IMAGE"

log "pushed $TARGET_IMAGE as $digest"
repository=$TARGET_IMAGE
[[ ${repository##*/} != *:* ]] || repository=${repository%:*}
pushed="$repository@$digest"
mkdir -p "$(dirname "$RESULT_FILE")"
reports_dir=$(cd "$(dirname "$RESULT_FILE")" && pwd)

# Where a report ends up: uploaded under REPORTS_URI, or left next to the result file.
publish() {
  if [[ -n ${REPORTS_URI:-} ]]; then
    local uri="${REPORTS_URI%/}/$PATCHPROP_REBUILD_ID/${1##*/}"
    aws s3 cp --only-show-errors "$1" "$uri" >&2 || return 1
    printf '%s' "$uri"
  else
    printf 'file://%s' "$1"
  fi
}
json() { local s=${1//\\/\\\\}; printf '"%s"' "${s//\"/\\\"}"; }

result="{\"image\": $(json "$TARGET_IMAGE"), \"digest\": $(json "$digest"), \"base\": $(json "$BASE_IMAGE")"
if [[ $SCAN != off ]] && command -v trivy >/dev/null 2>&1; then
  trivy_args=(image --quiet --timeout 15m)
  [[ $REGISTRY_TLS_VERIFY == true ]] || trivy_args+=(--insecure)
  vex=()
  [[ -z ${PATCHPROP_BASE_VEX:-} ]] || vex=(--vex "$PATCHPROP_BASE_VEX")
  log "scanning $pushed"
  trivy "${trivy_args[@]}" "${vex[@]}" --format json --output "$reports_dir/report.json" "$pushed"
  trivy "${trivy_args[@]}" --format cyclonedx --output "$reports_dir/sbom.cdx.json" "$pushed"
  report=$(publish "$reports_dir/report.json")
  sbom=$(publish "$reports_dir/sbom.cdx.json")
  result+=", \"scanned\": true, \"report\": $(json "$report"), \"sbom\": $(json "$sbom")"
  # Without the base's report new findings cannot be told apart from the base's: say so, go on.
  if trivy "${trivy_args[@]}" "${vex[@]}" --format json --output "$reports_dir/base-report.json" "$BASE_IMAGE"; then
    base_report=$(publish "$reports_dir/base-report.json")
    result+=", \"base_report\": $(json "$base_report")"
  else
    log "warning: the base $BASE_IMAGE could not be scanned; the gate goes without its report"
  fi
else
  log "not scanning: $([[ $SCAN == off ]] && echo SCAN=off || echo trivy is not installed)"
  result+=", \"scanned\": false"
fi

if [[ -n ${COSIGN_KMS_KEY:-} ]]; then
  key=$COSIGN_KMS_KEY
  [[ $key == awskms://* ]] || key="awskms:///$key"
  log "signing $pushed"
  sign=(--yes --key "$key" --tlog-upload="${COSIGN_TLOG_UPLOAD:-false}")
  [[ $REGISTRY_TLS_VERIFY == true ]] || sign+=(--allow-insecure-registry)
  cosign sign "${sign[@]}" "$pushed"
fi

printf '%s}\n' "$result" >"$RESULT_FILE"
log "result written to $RESULT_FILE"
