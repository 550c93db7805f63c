// Builds a servable model directory from a vision fixture (tests/fixtures/
// vision/README.md): its weights, config and preprocessor config, plus a
// tokenizer whose every id 0..511 is one added token, so a test can write any
// id sequence as text: "<tN>" is id N, and the fixture's special ids have the
// family's real strings (<bos> 2, <eos> 1, soft token 500, boi 501, eoi 502).
// A Replace normalizer drops "\n": Gemma 3's processor wraps each image in
// "\n\n" that the fixture's prompts (made without a processor) do not have.
// The chat template writes each text part as is and the family's image
// placeholder for each image part.
//
//   node make_vision_model.mjs FIXTURE_DIR OUT_DIR gemma3|gemma4
import fs from 'node:fs';
import path from 'node:path';

export function makeVisionModel(fixture, out, family) {
  fs.mkdirSync(out, { recursive: true });
  for (const f of ['config.json', 'generation_config.json', 'model.safetensors',
    'preprocessor_config.json']) {
    const dst = path.join(out, f);
    fs.rmSync(dst, { force: true });
    fs.copyFileSync(path.join(fixture, f), dst);
    fs.chmodSync(dst, 0o644);
  }
  const names = family === 'gemma3'
    ? { 500: '<image_soft_token>', 501: '<start_of_image>', 502: '<end_of_image>' }
    : { 500: '<|image|>', 501: '<|image>', 502: '<image|>' };
  Object.assign(names, { 0: '<pad>', 1: '<eos>', 2: '<bos>' });
  const vocab = {};
  const added = [];
  for (let id = 0; id < 512; id++) {
    const content = names[id] || `<t${id}>`;
    vocab[content] = id;
    added.push({ id, content, single_word: false, lstrip: false, rstrip: false,
      normalized: false, special: id in names });
  }
  const tokenizer = {
    version: '1.0', truncation: null, padding: null, added_tokens: added,
    normalizer: { type: 'Replace', pattern: { String: '\n' }, content: '' },
    pre_tokenizer: null, post_processor: null, decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
      end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
  const placeholder = family === 'gemma3' ? '<start_of_image>' : '<|image|>';
  const template = "{{ bos_token }}{% for m in messages %}{% if m['content'] is string %}" +
    "{{ m['content'] }}{% else %}{% for p in m['content'] %}{% if p['type'] == 'image' %}" +
    `${placeholder}{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}{% endfor %}`;
  fs.writeFileSync(path.join(out, 'tokenizer.json'), JSON.stringify(tokenizer));
  fs.writeFileSync(path.join(out, 'tokenizer_config.json'), JSON.stringify({
    bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', add_bos_token: false,
    chat_template: template,
  }));
  return out;
}

if (process.argv[1] && process.argv[1].endsWith('make_vision_model.mjs')) {
  const [fixture, out, family] = process.argv.slice(2);
  if (!fixture || !out || !family) {
    console.error('usage: node make_vision_model.mjs FIXTURE_DIR OUT_DIR gemma3|gemma4');
    process.exit(2);
  }
  makeVisionModel(fixture, out, family);
}
