// Strict, offline validation of Istio manifests with the validators that
// @kubernetes-models/istio generates from Istio's CRD schemas.
//
// stdin:  a JSON array of manifests (objects with apiVersion and kind)
// stdout: a JSON array, one entry per manifest: a list of error strings (empty when valid)
//
// The generated validators check types, enums, required fields, oneOf, formats, ...
// but not unknown fields: the CRD schemas carry no additionalProperties: false (the
// API server rejects unknown fields itself, kubectl's default --validate=strict). So
// this script adds that check: each object is handed to the validator behind a Proxy
// that records the property names the validator reads. A validator reads every
// property its schema declares (`data.x !== undefined`), so a key the validator never
// read is a field the schema does not know. Objects whose keys the validator lists
// (maps such as labels, whose schema is additionalProperties: <type>) accept any key,
// and so do objects of which it read nothing at all (free-form objects: the schema
// declares no property, as for x-kubernetes-preserve-unknown-fields).
//
// Install: npm ci --prefix tests/schemas

const MODELS = "@kubernetes-models/istio";

function tracker() {
  const seen = new WeakMap(); // target -> {read: Set<string>, listed: boolean}
  const proxies = new WeakMap(); // target -> proxy
  function wrap(value) {
    if (value === null || typeof value !== "object") return value;
    if (proxies.has(value)) return proxies.get(value);
    const isArray = Array.isArray(value);
    const rec = { read: new Set(), listed: false };
    if (!isArray) seen.set(value, rec);
    const proxy = new Proxy(value, {
      get(target, key, receiver) {
        if (!isArray && typeof key === "string") rec.read.add(key);
        return wrap(Reflect.get(target, key, receiver));
      },
      has(target, key) {
        if (!isArray && typeof key === "string") rec.read.add(key);
        return Reflect.has(target, key);
      },
      ownKeys(target) {
        rec.listed = true;
        return Reflect.ownKeys(target);
      },
    });
    proxies.set(value, proxy);
    return proxy;
  }
  function unknownFields(value, path, out) {
    if (value === null || typeof value !== "object") return out;
    if (Array.isArray(value)) {
      value.forEach((item, i) => unknownFields(item, `${path}/${i}`, out));
      return out;
    }
    const rec = seen.get(value);
    if (rec === undefined) return out; // never reached by the validator: its parent is reported
    const strict = !rec.listed && rec.read.size > 0;
    for (const key of Object.keys(value)) {
      const child = `${path}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`;
      if (strict && !rec.read.has(key)) {
        out.push(`${path || "(root)"}: unknown field "${key}"`);
      } else {
        unknownFields(value[key], child, out);
      }
    }
    return out;
  }
  return { wrap, unknownFields };
}

async function modelClass(apiVersion, kind) {
  const [group, version] = String(apiVersion).split("/");
  if (!group || !version || !group.endsWith(".istio.io") || !/^[A-Za-z0-9]+$/.test(String(kind))) {
    return null;
  }
  try {
    const mod = await import(`${MODELS}/${group}/${version}/${kind}`);
    return mod[kind] ?? null;
  } catch (err) {
    if (err && (err.code === "ERR_PACKAGE_PATH_NOT_EXPORTED" || err.code === "ERR_MODULE_NOT_FOUND")) {
      return null;
    }
    throw err;
  }
}

async function validateOne(manifest) {
  if (manifest === null || typeof manifest !== "object" || Array.isArray(manifest)) {
    return ["(root): manifest is not an object"];
  }
  const Model = await modelClass(manifest.apiVersion, manifest.kind);
  if (Model === null) {
    return [`(root): no Istio schema for apiVersion=${JSON.stringify(manifest.apiVersion)} kind=${JSON.stringify(manifest.kind)} in ${MODELS}`];
  }
  // A plain deep copy, as the model class would hold it (undefined values dropped).
  const data = new Model(manifest).toJSON();
  const { wrap, unknownFields } = tracker();
  const errors = [];
  try {
    Model.prototype.validate.call(wrap(data));
  } catch (err) {
    if (!Array.isArray(err?.errors)) throw err;
    for (const e of err.errors) {
      let msg = e.message ?? e.keyword;
      if (e.keyword === "enum" && e.params?.allowedValues) msg += ` ${JSON.stringify(e.params.allowedValues)}`;
      errors.push(`${e.instancePath || "(root)"}: ${msg}`);
    }
  }
  return errors.concat(unknownFields(data, "", []));
}

async function main() {
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  const manifests = JSON.parse(input);
  if (!Array.isArray(manifests)) throw new Error("stdin must be a JSON array of manifests");
  const results = [];
  for (const m of manifests) results.push(await validateOne(m));
  process.stdout.write(JSON.stringify(results));
}

main().catch((err) => {
  process.stderr.write(`validate-istio: ${err?.stack ?? err}\n`);
  process.exit(2);
});
