#!/usr/bin/env bash
# Build the CPU or CUDA image with a model baked in and push it to ECR; prints the ImageUri for the stack.
# Usage: deploy/docker/build-and-push.sh cpu|cuda [MODEL (tiny.en|base; small is incomplete on PyPI)] [REPOSITORY (default batchscribe)]
set -euo pipefail
KIND=${1:?cpu or cuda}; MODEL=${2:-tiny.en}; REPOSITORY=${3:-batchscribe}
case "$MODEL" in tiny.en) EXTRA=tiny-en ;; base) EXTRA=$MODEL ;; *) echo "unknown model $MODEL" >&2; exit 2 ;; esac
cd "$(dirname "$0")/../.."
ACCOUNT=$(aws sts get-caller-identity --query Account --output text)
REGION=${AWS_REGION:-$(aws configure get region)}
REGISTRY="$ACCOUNT.dkr.ecr.$REGION.amazonaws.com"
TAG="$REGISTRY/$REPOSITORY:$KIND-$MODEL-$(git rev-parse --short HEAD)"
aws ecr describe-repositories --repository-names "$REPOSITORY" >/dev/null 2>&1 \
    || aws ecr create-repository --repository-name "$REPOSITORY" --image-scanning-configuration scanOnPush=true >/dev/null
aws ecr get-login-password --region "$REGION" | docker login --username AWS --password-stdin "$REGISTRY"
docker build -f "deploy/docker/Dockerfile.$KIND" --build-arg MODEL="$MODEL" --build-arg EXTRA="$EXTRA" -t "$TAG" .
docker push "$TAG"
echo "ImageUri=$TAG"
