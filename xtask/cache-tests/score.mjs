// Scores results of the HTTP caching tests (the npm package
// http-cache-tests) with the package's own code, the way its results page
// (cache-tests.fyi, index.html + lib/summary.mjs) does: the same list of
// tests (tests/index.mjs plus tests/surrogate-control.mjs, as index.html and
// cli.mjs build it) and the same classification of each result
// (determineTestResult of lib/display.mjs, dependencies honoured).
//
// usage: node score.mjs PACKAGE_DIR NAME RESULTS_JSON
//
// Prints JSON on stdout:
// {
//   "package": "http-cache-tests 0.4.5",
//   "totals": { "required": 165, "optimal": 95, "check": 90 },
//   "caches": [{ "name", "version", "type",
//                "outcomes": { KIND: { OUTCOME: count } },
//                "not_passed": [{ "kind", "outcome", "id", "name", "reason" }] }]
// }
// The first cache is NAME (RESULTS_JSON); after it come the reverse proxies
// and CDNs whose results the package ships (results/index.mjs).
// `not_passed` leaves out checks: those have no right answer.

import fs from 'node:fs'
import path from 'node:path'
import process from 'node:process'
import { pathToFileURL } from 'node:url'

const [packageDir, ourName, ourResults] = process.argv.slice(2)
if (ourResults === undefined) {
  console.error('usage: node score.mjs PACKAGE_DIR NAME RESULTS_JSON')
  process.exit(2)
}

const load = file => import(pathToFileURL(path.join(packageDir, file)).href)
const readJson = file => JSON.parse(fs.readFileSync(file, 'utf8'))

const testSuites = (await load('tests/index.mjs')).default
testSuites.push((await load('tests/surrogate-control.mjs')).default)
const display = await load('lib/display.mjs')
const index = (await load('results/index.mjs')).default
const pkg = readJson(path.join(packageDir, 'package.json'))

// determineTestResult returns one of display.mjs's private result types,
// [font glyph, colour, symbol]; the symbol is what cli.mjs prints. Named as
// display.mjs names them. An unknown symbol means the package changed its
// scoring, and this script has to follow.
const OUTCOMES = new Map([
  ['✅', 'pass'],
  ['⛔️', 'fail'],
  ['⚠️', 'optional_fail'],
  ['Y', 'yes'],
  ['N', 'no'],
  ['🔹', 'setup_fail'],
  ['⁉️', 'harness_fail'],
  ['⚪️', 'dependency_fail'],
  ['↻', 'retry'],
  ['-', 'untested']
])
// display.mjs's passTypes: what a dependency must be for its dependants to count.
const PASSING = new Set(['pass', 'yes'])

function outcome (testId, results) {
  const symbol = display.determineTestResult(testSuites, testId, results)[2]
  const name = OUTCOMES.get(symbol)
  if (name === undefined) {
    throw new Error(`determineTestResult returned an unknown result "${symbol}" for ${testId}`)
  }
  return name
}

// display.mjs counts a test without a kind as required.
const kindOf = test => test.kind ?? 'required'

// The tests the command-line client runs: client/runner.mjs skips the
// browser-only ones when it is not testing a browser cache. A browser-only
// test is "untested" for every proxy, so it is left out of every total.
const tests = testSuites
  .flatMap(suite => suite.tests)
  .filter(test => test.browser_only !== true)

const totals = {}
for (const test of tests) {
  totals[kindOf(test)] = (totals[kindOf(test)] ?? 0) + 1
}

function reason (test, results, result) {
  if (result === 'dependency_fail') {
    const failed = test.depends_on.filter(id => !PASSING.has(outcome(id, results)))
    return `depends on ${failed.join(', ')}`
  }
  const raw = results[test.id]
  if (raw === undefined) return 'no result'
  return Array.isArray(raw) ? String(raw[1]) : ''
}

function score (name, version, type, results) {
  const outcomes = {}
  const notPassed = []
  for (const test of tests) {
    const kind = kindOf(test)
    const result = outcome(test.id, results)
    outcomes[kind] ??= {}
    outcomes[kind][result] = (outcomes[kind][result] ?? 0) + 1
    if (kind !== 'check' && result !== 'pass') {
      notPassed.push({
        kind,
        outcome: result,
        id: test.id,
        name: test.name,
        reason: reason(test, results, result)
      })
    }
  }
  return { name, version, type, outcomes, not_passed: notPassed }
}

const caches = [score(ourName, '', 'ours', readJson(ourResults))]
for (const item of index) {
  if (item.type === 'rev-proxy' || item.type === 'cdn') {
    const results = readJson(path.join(packageDir, 'results', item.file))
    caches.push(score(item.name, item.version, item.type, results))
  }
}

console.log(JSON.stringify({ package: `${pkg.name} ${pkg.version}`, totals, caches }))
