// k8svalidate.js: validates Kubernetes objects offline against the API schemas that the npm
// package kubernetes-models (tests/package.json) generates from the Kubernetes OpenAPI spec.
// stdin: a JSON array of objects (kubectl kustomize's output, parsed). stdout: one line per
// object, "ok <kind>/<name>" or "invalid <kind>/<name>: <errors>". Exit 0 when every object is
// valid and of a known apiVersion and kind, 1 otherwise.
'use strict';
const path = require('path');

const models = path.join(__dirname, '..', 'node_modules', 'kubernetes-models');

function check(obj) {
  const id = `${obj.kind}/${obj.metadata && obj.metadata.name}`;
  let mod;
  try {
    mod = require(path.join(models, obj.apiVersion));   // "v1", "apps/v1", "policy/v1", ...
  } catch (e) {
    return `invalid ${id}: unknown apiVersion ${obj.apiVersion}`;
  }
  const Model = mod[obj.kind];
  if (typeof Model !== 'function') return `invalid ${id}: unknown kind in ${obj.apiVersion}`;
  try {
    new Model(obj).validate();
  } catch (e) {
    return `invalid ${id}: ${e.message}`;
  }
  return `ok ${id}`;
}

let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const lines = JSON.parse(input).map(check);
  process.stdout.write(lines.join('\n') + '\n');
  process.exit(lines.every((l) => l.startsWith('ok ')) ? 0 : 1);
});
