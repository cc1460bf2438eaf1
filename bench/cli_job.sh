#!/usr/bin/env bash
# The git CLI doing what one worker job does to the repository: shallow single-branch clone,
# the LLM's edit (here with sed), commit, push a new branch, delete the clone. The baseline of bench/worker.
# Usage: cli_job.sh URL BRANCH WORKDIR
set -euo pipefail
url=$1 branch=$2 dir=$3
git clone -q --depth 1 --single-branch --branch main "$url" "$dir"
sed -i 's/"lodash": "^4.17.20"/"lodash": "^4.17.21"/' "$dir/package.json"
git -C "$dir" -c user.name=Remediator -c user.email=remediator@users.noreply.localhost \
  commit -q -am "fix(deps): bump lodash to 4.17.21"
git -C "$dir" push -q origin "HEAD:refs/heads/$branch"
# The worker deletes its clone when the job ends; so does this (deleting 3000 files costs).
rm -rf "$dir"
