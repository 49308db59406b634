// Drives Gleaner with the official `openwhisk` npm client, configured from
// ~/.wskprops (APIHOST, AUTH) exactly as OpenWhisk's own tools are.
// Prints one JSON object with what it saw; the pytest side checks it.
const fs = require('fs');
const os = require('os');
const path = require('path');
const openwhisk = require('openwhisk');

const file = process.env.WSK_CONFIG_FILE || path.join(os.homedir(), '.wskprops');
const props = {};
for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
  const at = line.indexOf('=');
  if (at > 0) props[line.slice(0, at).trim()] = line.slice(at + 1).trim();
}

const name = process.argv[2];
const code = "def main(args):\n    print('npm says hi')\n    return {'greeting': 'hello ' + args.get('who', '?')}\n";

(async () => {
  const ow = openwhisk({ apihost: props.APIHOST, api_key: props.AUTH });
  const created = await ow.actions.create({ name, action: code, kind: 'python:3', overwrite: true });
  const activation = await ow.actions.invoke({ name, blocking: true, params: { who: 'npm' } });
  const result = await ow.actions.invoke({ name, blocking: true, result: true, params: { who: 'again' } });
  let fetched = null;
  for (let i = 0; i < 50 && !fetched; i++) {
    try { fetched = await ow.activations.get({ name: activation.activationId }); }
    catch (e) { await new Promise(r => setTimeout(r, 200)); }
  }
  const logs = await ow.activations.logs({ name: activation.activationId });
  const listed = await ow.actions.list();
  await ow.actions.delete({ name });
  console.log(JSON.stringify({ created, activation, result, fetched, logs, listed: listed.map(a => a.name) }));
})().catch(err => { console.error(err.stack || err); process.exit(1); });
