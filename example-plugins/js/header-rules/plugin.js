// header-rules: a header scoring rule engine driven by its config.
//
// Each rule matches a header field with a regular expression (or fires when
// the field is absent) and adds its score. At the end of DATA the plugin
// adds `X-Rule-Score: <total> (<rule names>)` to the message and leaves the
// total in the transaction note `rule-score` for later plugins (in any
// language) to read. With `reject_at` set, a total at or above it is refused.
import { DECLINED, deny, log } from "./wasmtp.js";

const state = {
  rules: [],
  header: "X-Rule-Score",
  note: "rule-score",
  rejectAt: undefined,
};

function compileRule(rule, i) {
  if (typeof rule !== "object" || rule === null) {
    throw new Error(`rules[${i}] must be a table`);
  }
  const name = String(rule.name ?? `rule${i + 1}`);
  if (typeof rule.header !== "string" || rule.header === "") {
    throw new Error(`rules[${i}] (${name}): "header" is required`);
  }
  const score = Number(rule.score ?? 1);
  if (!Number.isFinite(score)) {
    throw new Error(`rules[${i}] (${name}): "score" must be a number`);
  }
  const absent = rule.absent === true;
  let regex;
  if (!absent) {
    if (typeof rule.pattern !== "string") {
      throw new Error(`rules[${i}] (${name}): "pattern" is required unless absent = true`);
    }
    try {
      regex = new RegExp(rule.pattern, String(rule.flags ?? "i"));
    } catch (e) {
      throw new Error(`rules[${i}] (${name}): bad pattern: ${e.message}`);
    }
  }
  return { name, header: rule.header, score, absent, regex };
}

/** Score of a message's headers: [total, names of the rules that fired]. */
function score(txn) {
  let total = 0;
  const fired = [];
  for (const rule of state.rules) {
    const values = txn.header(rule.header);
    const hit = rule.absent ? values.length === 0 : values.some((v) => rule.regex.test(v));
    if (hit) {
      total += rule.score;
      fired.push(rule.name);
    }
  }
  return [Math.round(total * 100) / 100, fired];
}

export default {
  init(config) {
    const rules = config.rules ?? [];
    if (!Array.isArray(rules)) throw new Error('"rules" must be an array of tables');
    state.rules = rules.map(compileRule);
    state.header = String(config.header ?? state.header);
    state.note = String(config.note ?? state.note);
    if (config.reject_at !== undefined) {
      state.rejectAt = Number(config.reject_at);
      if (!Number.isFinite(state.rejectAt)) throw new Error('"reject_at" must be a number');
    }
  },

  dataPost(conn, txn) {
    const [total, fired] = score(txn);
    const detail = fired.length > 0 ? ` (${fired.join(", ")})` : "";
    txn.addHeader(state.header, `${total}${detail}`);
    txn.setNote(state.note, String(total));
    log.info("header rules scored", { score: total, rules: fired.join(",") });
    if (state.rejectAt !== undefined && total >= state.rejectAt) {
      return deny(550, "5.7.1", `Message refused by header rules (score ${total})`);
    }
    return DECLINED;
  },
};
