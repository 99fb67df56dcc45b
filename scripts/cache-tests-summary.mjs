// Summarises a run of the HTTP caching test suite (third_party/cache-tests)
// beside the results the suite ships for other reverse proxies and CDNs.
//
//   node scripts/cache-tests-summary.mjs RESULTS.json [--name Larder]
//       [--version V] [--out DIR]
//
// Prints a markdown table (required passes, optimal passes) to stdout and
// writes DIR/summary.md, DIR/summary.json and DIR/failures.txt (the required
// tests the subject does not pass, tab-separated). DIR defaults to the
// directory of RESULTS.json.
//
// Results are judged exactly as the suite's web page (cache-tests.fyi)
// shows them: determineTestResult with honorDependencies = true, so a test
// whose depends_on tests do not pass counts as dependency_fail, not pass.

import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const suiteDir = path.join(here, '..', 'third_party', 'cache-tests')
const suiteUrl = rel => pathToFileURL(path.join(suiteDir, rel)).href

const { default: testSuites } = await import(suiteUrl('tests/index.mjs'))
const { determineTestResult, resultTypes } = await import(suiteUrl('test-engine/lib/results.mjs'))
const { default: shipped } = await import(suiteUrl('results/index.mjs'))

function usage (message) {
  if (message) console.error(message)
  console.error('usage: node scripts/cache-tests-summary.mjs RESULTS.json [--name NAME] [--version V] [--out DIR]')
  process.exit(2)
}

const argv = process.argv.slice(2)
const opts = { name: 'Larder', version: '', out: undefined, results: undefined }
while (argv.length) {
  const arg = argv.shift()
  if (arg === '--name' || arg === '--version' || arg === '--out') {
    if (!argv.length) usage(`${arg} needs a value`)
    opts[arg.slice(2)] = argv.shift()
  } else if (arg.startsWith('-')) {
    usage(`unknown option ${arg}`)
  } else if (opts.results === undefined) {
    opts.results = arg
  } else {
    usage(`unexpected argument ${arg}`)
  }
}
if (opts.results === undefined) usage('RESULTS.json is required')
const outDir = opts.out ?? path.dirname(opts.results)

function readJson (file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch (err) {
    console.error(`cannot read results from ${file}: ${err.message}`)
    process.exit(1)
  }
}

const typeName = new Map(Object.entries(resultTypes).map(([name, type]) => [type, name]))

// Every test with its suite; the CLI never runs browser_only tests, so a
// proxy cannot pass them: they are left out of the totals.
const allTests = testSuites.flatMap(suite => suite.tests.map(test => ({ suite, test })))
const isRequired = test => test.kind === undefined || test.kind === 'required'
const applicable = allTests.filter(({ test }) => test.browser_only !== true)
const required = applicable.filter(({ test }) => isRequired(test))
const optimal = applicable.filter(({ test }) => test.kind === 'optimal')
const browserOnlyRequired = allTests.filter(({ test }) => isRequired(test) && test.browser_only === true).length

function score (results) {
  const passed = list => list.filter(({ test }) =>
    determineTestResult(testSuites, test.id, results, true) === resultTypes.pass).length
  return { required_passed: passed(required), optimal_passed: passed(optimal) }
}

const subjectResults = readJson(opts.results)
const subject = { name: opts.name, version: opts.version, type: 'subject', ...score(subjectResults) }

const rows = [subject]
for (const entry of shipped) {
  if (entry.type !== 'rev-proxy' && entry.type !== 'cdn') continue
  const results = readJson(path.join(suiteDir, 'results', entry.file))
  rows.push({ name: entry.name, version: entry.version, type: entry.type, ...score(results) })
}
rows.sort((a, b) => b.required_passed - a.required_passed ||
  b.optimal_passed - a.optimal_passed || a.name.localeCompare(b.name))

const cell = s => String(s).replaceAll('|', '\\|')
const table = [
  `| name | version | required passed / ${required.length} | optimal passed / ${optimal.length} |`,
  '| --- | --- | ---: | ---: |',
  ...rows.map(r => {
    const name = r === subject ? `**${cell(r.name)}**` : cell(r.name)
    return `| ${name} | ${cell(r.version)} | ${r.required_passed} / ${required.length} | ${r.optimal_passed} |`
  })
].join('\n')

const note = `Required tests: kind 'required' or unset, ${required.length} of them ` +
  `(${browserOnlyRequired} browser-only ones left out: the CLI never runs them). ` +
  'Judged as cache-tests.fyi shows them: a test whose dependencies do not pass is not a pass.'

// The required tests the subject does not pass, with the suite's message.
const failures = required.flatMap(({ suite, test }) => {
  const type = determineTestResult(testSuites, test.id, subjectResults, true)
  if (type === resultTypes.pass) return []
  const raw = subjectResults[test.id]
  let message = ''
  if (Array.isArray(raw)) message = raw.filter(part => part !== undefined).join(': ')
  if (type === resultTypes.dependency_fail) {
    const unmet = test.depends_on.flatMap(dep => {
      const depType = determineTestResult(testSuites, dep, subjectResults, true)
      return [resultTypes.pass, resultTypes.yes].includes(depType) ? [] : [`${dep} (${typeName.get(depType)})`]
    })
    const own = raw === true ? 'pass' : message || typeName.get(resultTypes.untested)
    message = `dependency not passed: ${unmet.join(', ')}; own result: ${own}`
  }
  const oneLine = s => String(s).replace(/\s+/g, ' ').trim()
  return [[test.id, suite.id, typeName.get(type) ?? '?', oneLine(message), oneLine(test.name)].join('\t')]
})

fs.mkdirSync(outDir, { recursive: true })
fs.writeFileSync(path.join(outDir, 'summary.md'),
  `# HTTP caching test suite (http-tests/cache-tests)\n\n${table}\n\n${note}\n`)
fs.writeFileSync(path.join(outDir, 'summary.json'), JSON.stringify({
  subject,
  required_total: required.length,
  optimal_total: optimal.length,
  rows
}, null, 2) + '\n')
fs.writeFileSync(path.join(outDir, 'failures.txt'),
  ['# id\tsuite\tresult\tmessage\tname', ...failures].join('\n') + '\n')

console.log(table)
console.log('')
console.log(note)
console.log(`${opts.name}: ${failures.length} required tests not passed (listed in ${path.join(outDir, 'failures.txt')})`)
