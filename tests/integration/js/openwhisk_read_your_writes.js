// Read-your-writes with the official `openwhisk` npm client: an activation a
// blocking invoke has just returned is in the very next activations list, for
// an action and for a DAG invoked as an action (configured from
// $WSK_CONFIG_FILE, else ~/.wskprops). No wait between the invoke and the list.
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

const [action, dag] = process.argv.slice(2);
const ids = list => list.map(a => a.activationId);

(async () => {
  const ow = openwhisk({ apihost: props.APIHOST, api_key: props.AUTH });
  const seen = {};
  for (const [key, name] of [['action', action], ['dag', dag]]) {
    const activation = await ow.actions.invoke({ name, blocking: true, params: { n: 1 } });
    const listed = await ow.activations.list({ limit: 50 });
    const named = await ow.activations.list({ name, limit: 50 });
    seen[key] = {
      id: activation.activationId,
      result: activation.response.result,
      listed: ids(listed),
      named: ids(named),
    };
  }
  console.log(JSON.stringify(seen));
})().catch(err => { console.error(err.stack || err); process.exit(1); });
