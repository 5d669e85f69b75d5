// The composer page: settings in the form and the URL, a melody from
// /api/generate drawn by abcjs, played from the server's WAV with the playing
// note highlighted. No build step; abcjs is served beside this file.
"use strict";

const SETTINGS = ["model", "bars", "meter", "mode", "style", "pickup", "form", "mode_guidance", "prime", "start_like",
  "seed", "temperature", "top_k", "top_p", "max_len", "key", "tempo"];
const $ = (id) => document.getElementById(id);
// `asked` counts the melodies asked for: only the latest one's answer is shown,
// so a slow answer never replaces a newer one.
const state = { models: [], melody: null, tune: null, timing: null, playing: [], asked: 0 };

function setOptions(select, values, first) {
  const chosen = select.value;
  select.replaceChildren();
  if (first !== undefined) select.append(new Option(first, ""));
  for (const value of values) {
    const [label, v] = Array.isArray(value) ? value : [value, value];
    select.append(new Option(label, v));
  }
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
}

async function api(path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) {
    const field = body.field ? ` (${body.field})` : "";
    throw new Error(`${body.error}${field}`);
  }
  return body;
}

// Fills the controls a model offers: its defaults, and meter, mode and
// style when it is conditioned; the held-out songs it can start like.
async function chooseModel(name) {
  const model = state.models.find((m) => m.name === name) || state.models[0];
  if (!model) return;
  const conditioned = Boolean(model.conditioned);
  for (const id of ["meter", "mode", "style", "mode_guidance"]) $(id).disabled = !conditioned && id !== "meter";
  // Only a model trained with --form reads a form.
  $("form").disabled = !(conditioned && model.conditions.form);
  if (conditioned) {
    setOptions($("meter"), model.conditions.meters, "drawn");
    setOptions($("style"), model.conditions.styles, "drawn");
  } else {
    setOptions($("meter"), ["2/4", "3/4", "4/4", "6/8", "3/8"], "4/4");
  }
  $("temperature").placeholder = model.defaults ? model.defaults.temperature : "";
  $("model-note").textContent = model.error
    ? model.error
    : `${conditioned ? "knows meter, mode, style and bars" : "not conditioned: meter only changes the notation"}; ${
        model.held_out_songs
          ? `${model.held_out_songs} held-out songs to start like`
          : "no held-out songs to start like (serve --data DIR gives them)"
      }`;
  const songs = model.held_out_songs ? (await api(`/api/models/${encodeURIComponent(model.name)}/songs`)).songs : [];
  setOptions($("start_like"), songs.map((s) => [`${s.id} ${s.title}`.slice(0, 40), s.id]), "(nothing)");
}

// The checkbox says the opposite of the API's `grammar` (on by default).
function query() {
  const params = new URLSearchParams();
  for (const id of SETTINGS) {
    const value = $(id).disabled ? "" : $(id).value.trim();
    if (value !== "") params.set(id, value);
  }
  if ($("grammar").checked) params.set("grammar", "false");
  return params;
}

function fillFrom(params) {
  for (const id of SETTINGS) if (params.has(id)) $(id).value = params.get(id);
  $("grammar").checked = params.get("grammar") === "false";
}

function stop() {
  $("audio").pause();
  if (state.timing) state.timing.stop();
  highlight([]);
  $("play").textContent = "Play";
}

function highlight(elements) {
  for (const el of state.playing) el.classList.remove("playing");
  state.playing = elements;
  for (const el of elements) el.classList.add("playing");
}

async function generate(push) {
  stop();
  $("error").textContent = "";
  $("generate").disabled = true;
  const params = query();
  const ask = ++state.asked;
  try {
    const melody = await api(`/api/generate?${params}`);
    if (ask !== state.asked) return;
    state.melody = melody;
    show(melody);
    const url = `?${melody.query}`;
    if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
    remember(melody);
  } catch (error) {
    if (ask === state.asked) $("error").textContent = error.message;
  } finally {
    if (ask === state.asked) $("generate").disabled = false;
  }
}

function show(melody) {
  const width = Math.max(300, Math.min(900, $("score").clientWidth - 40));
  // The N: remark repeats the "Asked" line above the score, and abcjs draws
  // it as one line that runs past the score's edge.
  const abc = melody.abc.replace(/^N:.*\n/gm, "");
  state.tune = ABCJS.renderAbc("score", abc, { add_classes: true, staffwidth: width })[0];
  state.timing = new ABCJS.TimingCallbacks(state.tune, {
    eventCallback: (event) => {
      if (!event) return;
      highlight(event.elements.flat());
    },
  });
  const asked = melody.asked;
  $("asked").textContent = asked
    ? `Asked: ${asked.description}. `
      + (asked.caution ? `Note: ${asked.caution}. ` : "")
      + `Written in ${melody.key}; ${melody.closed ? "ended by the model" : "stopped at the length limit"}.`
    : `Written in ${melody.key}, ${melody.meter}; ${melody.closed ? "ended by the model" : "stopped at the length limit"}.`;
  const s = melody.statistics;
  // Steps counted from 1, as the score is read.
  const span = (start) => `${start + 1}-${start + s.longest_copy}`;
  const copyText = () => s.longest_copy === null ? "(training songs not known)"
    : !s.copied_from ? "none"
    : `${s.longest_copy} grid steps: steps ${span(s.copied_from.melody_start)} here are steps ${span(s.copied_from.song_start)} of ${s.copied_from.song}`;
  const rows = [
    ["Notes", s.notes],
    ["Grid steps", s.grid_steps],
    ["Bars written (upbeat included)", melody.score.bars],
    ["Notes in the scale", `${(100 * s.in_scale).toFixed(0)}%`],
    ["Range", s.range_semitones === null ? "" : `${s.range_semitones} semitones`],
    ["Ends on the tonic", s.ends_on_tonic ? "yes" : "no"],
    ["Key the notes suggest (Krumhansl-Kessler)", s.key_found || ""],
    ["Bars repeating an earlier bar", s.repeated_bars ? `${s.repeated_bars.repeated} of ${s.repeated_bars.of}` : ""],
    ["Collection it is nearest to (judge's style classifier)",
      s.style_found ?? "(not known: the training songs are unknown or of one collection)"],
    ["Longest copy from a training song", copyText()],
  ];
  $("stats").replaceChildren(...rows.map(([k, v]) => {
    const tr = document.createElement("tr");
    tr.append(Object.assign(document.createElement("td"), { textContent: k }),
      Object.assign(document.createElement("td"), { textContent: v }));
    return tr;
  }));
  const names = { mid: "MIDI", musicxml: "MusicXML", abc: "ABC", krn: "kern", wav: "WAV", txt: "tokens" };
  $("downloads").replaceChildren(...Object.entries(names).map(([ext, label]) => {
    const a = Object.assign(document.createElement("a"), { href: melody.links[ext], textContent: label });
    a.setAttribute("download", "");
    a.id = `download-${ext}`;
    return a;
  }));
  $("tokens").textContent = melody.tokens;
  $("audio").src = melody.links.wav;
  $("play").disabled = false;
}

function remember(melody) {
  const li = document.createElement("li");
  const a = Object.assign(document.createElement("a"), {
    href: `?${melody.query}`,
    textContent: `${melody.model}, seed ${melody.seed}: ${melody.meter}, ${melody.key}`,
  });
  a.addEventListener("click", (event) => {
    event.preventDefault();
    fillFrom(new URLSearchParams(melody.query));
    generate(true);
  });
  li.append(a);
  $("history").prepend(li);
  while ($("history").children.length > 12) $("history").lastChild.remove();
}

async function play() {
  if (!$("audio").paused) { stop(); return; }
  $("play").textContent = "Stop";
  try {
    await $("audio").play();
    state.timing.start();
  } catch (error) {
    $("error").textContent = `cannot play: ${error.message}`;
    stop();
  }
}

async function main() {
  $("settings").addEventListener("submit", (event) => { event.preventDefault(); generate(true); });
  $("another").addEventListener("click", () => {
    $("seed").value = Math.floor(Math.random() * 1e9);
    generate(true);
  });
  $("model").addEventListener("change", () => chooseModel($("model").value));
  $("play").addEventListener("click", play);
  $("audio").addEventListener("ended", stop);
  window.addEventListener("popstate", () => { fillFrom(new URLSearchParams(location.search)); generate(false); });
  try {
    state.models = (await api("/api/models")).models;
  } catch (error) {
    $("error").textContent = error.message;
    return;
  }
  setOptions($("model"), state.models.map((m) => m.name));
  const params = new URLSearchParams(location.search);
  if (params.has("model")) $("model").value = params.get("model");
  await chooseModel($("model").value);
  fillFrom(params);
  // A first visit shows a melody at once, with the form's defaults.
  await generate(false);
  document.body.dataset.ready = "true";
}

main();
