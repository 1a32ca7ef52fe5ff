// The MemoPainter page: plain JavaScript talking to the JSON API of `memopainter serve`.
"use strict";

const $ = (selector) => document.querySelector(selector);
// The server writes its token into the page; it refuses a POST without it (another site cannot read it).
const TOKEN = $('meta[name="memopainter-token"]').content;
const cards = [];  // {file, name, extension, results: [{url, label, palette}], selected, element}
let busy = false;

async function api(url, form) {
  const options = form ? { method: "POST", body: form, headers: { "X-MemoPainter-Token": TOKEN } } : {};
  const response = await fetch(url, options);
  let body = null;
  try {
    body = await response.json();
  } catch {
    // A proxy or a crash can answer with something other than our JSON; say so plainly below.
  }
  if (!response.ok) {
    throw new Error((body && body.error) || `the server answered ${response.status} ${response.statusText}`);
  }
  return body;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

function setProgress(text) {
  $("#progress").hidden = !text;
  $("#progress-text").textContent = text || "";
}

async function loadInfo() {
  try {
    const info = await api("/api/model");
    describeModel(info);
  } catch (error) {
    $("#model-info").textContent = `cannot reach the model: ${error.message}`;
  }
}

function describeModel(info) {
  const memory = info.has_memory ? `${info.slots_written} of ${info.slots} memory slots written` : "no memory";
  const lineart = info.input === "lineart" ? " · line art in" : "";
  $("#model-info").textContent = `${info.checkpoint} · ${info.feature} feature · ${memory}${lineart}`;
  if (info.input === "lineart") $("#input-kind").textContent = "line art";
  const topK = $("#top-k");
  const most = info.has_memory ? Math.max(1, info.slots_written) : 1;
  topK.max = most;
  topK.value = Math.min(Number(topK.value) || 1, most);
  $("#remember").hidden = !info.has_memory;
}

async function colorizeFiles(files) {
  if (busy || !files.length) return;
  busy = true;
  showError("");
  const problems = [];
  const topK = $("#top-k").value;
  try {
    for (let i = 0; i < files.length; i++) {
      const file = files[i];
      setProgress(`colorizing ${i + 1} of ${files.length}: ${file.name}`);
      const form = new FormData();
      form.append("image", file);
      form.append("top_k", topK);
      try {
        addCard(file, await api("/api/colorize", form));
      } catch (error) {
        problems.push(error.message);
      }
    }
  } finally {
    busy = false;
    setProgress("");
  }
  showError(problems.join("\n"));
  $("#download-zip").disabled = cards.length === 0;
}

function resultEntries(data, labelOf) {
  return data.results.map((url, i) => ({ url, label: labelOf(i), palette: data.palettes[i] || [] }));
}

function addCard(file, data) {
  const element = $("#card-template").content.firstElementChild.cloneNode(true);
  // An animation comes back as animations in its own format (.gif, .webp, .png), which <img> plays.
  const extension = data.extension || ".png";
  const card = { file, name: data.name, extension, results: [], selected: 0, element };
  card.results = resultEntries(data, (i) =>
    data.slots ? `#${i + 1} slot ${data.slots[i]}` : data.palettes[0].length ? "palette" : "result");
  const frames = data.frames > 1 ? `, ${data.frames} frames` : "";
  element.querySelector(".card-name").textContent = `${data.name} (${data.width}×${data.height}${frames})`;
  element.querySelector(".download").textContent = `Download ${extension.slice(1).toUpperCase()}`;
  element.querySelector(".before").src = data.gray;
  const slider = element.querySelector(".slider");
  slider.addEventListener("input", () => {
    element.querySelector(".after").style.clipPath = `inset(0 0 0 ${slider.value}%)`;
  });
  slider.dispatchEvent(new Event("input"));
  element.querySelector(".recolor").addEventListener("click", () => recolor(card));
  cards.push(card);
  $("#results").append(element);
  select(card, 0);
}

function select(card, index) {
  card.selected = index;
  const entry = card.results[index];
  const element = card.element;
  element.querySelector(".after").src = entry.url;
  const link = element.querySelector(".download");
  link.href = entry.url;
  link.download = downloadName(card, index);
  const gallery = element.querySelector(".gallery");
  gallery.replaceChildren(...card.results.map((result, i) => {
    const figure = document.createElement("figure");
    figure.className = i === index ? "selected" : "";
    const img = document.createElement("img");
    img.src = result.url;
    img.alt = result.label;
    const caption = document.createElement("figcaption");
    caption.textContent = result.label;
    figure.append(img, caption);
    figure.addEventListener("click", () => select(card, i));
    return figure;
  }));
  const swatches = element.querySelector(".swatches");
  swatches.replaceChildren(...entry.palette.slice(0, 10).map((hex) => {
    const input = document.createElement("input");
    input.type = "color";
    input.value = hex;
    input.title = hex;
    return input;
  }));
  element.querySelector(".palette-editor").hidden = entry.palette.length === 0;
}

function downloadName(card, index) {
  const stem = card.name.replace(/\.[^.]*$/, "") || "image";
  return index === 0 ? `${stem}_color${card.extension}` : `${stem}_color_${index + 1}${card.extension}`;
}

async function recolor(card) {
  if (busy) return;
  const colors = [...card.element.querySelectorAll(".swatches input")].map((input) => input.value);
  busy = true;
  showError("");
  setProgress(`recoloring ${card.name} with ${colors.length} colors`);
  try {
    const form = new FormData();
    form.append("image", card.file);
    form.append("top_k", "1");
    form.append("palette", colors.join(","));
    const data = await api("/api/colorize", form);
    card.results.push(...resultEntries(data, () => "palette"));
    select(card, card.results.length - 1);
  } catch (error) {
    showError(error.message);
  } finally {
    busy = false;
    setProgress("");
  }
}

async function rememberReference(event) {
  event.preventDefault();
  if (busy) return;
  const file = $("#remember-file").files[0];
  if (!file) return;
  const replace = $("#remember-replace").checked;
  if (replace && !window.confirm("Overwrite the loaded checkpoint file with the taught model?")) return;
  busy = true;
  const status = $("#remember-status");
  status.className = "";
  status.textContent = `teaching the memory ${file.name}…`;
  try {
    const form = new FormData();
    form.append("image", file);
    form.append("class_name", $("#remember-class").value);
    form.append("replace", replace ? "true" : "false");
    const data = await api("/api/remember", form);
    const what = data.action === "wrote" ? `wrote slot ${data.slot}` : `refreshed slot ${data.slot}`;
    const removed = data.removed.length ? `; deleted the oldest taught ${data.removed.join(", ")}` : "";
    status.textContent = `${data.name}: ${what}; now serving ${data.checkpoint}${removed}`;
    describeModel(data);
  } catch (error) {
    status.className = "error";
    status.textContent = error.message;
  } finally {
    busy = false;
  }
}

// A zip of stored (uncompressed) entries: the images are compressed already.
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function zipBlob(files) {
  const parts = [];
  const central = [];
  let offset = 0;
  for (const { name, bytes } of files) {
    const nameBytes = new TextEncoder().encode(name);
    const crc = crc32(bytes);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);
    local.setUint16(6, 0x0800, true);  // names are UTF-8
    local.setUint32(14, crc, true);
    local.setUint32(18, bytes.length, true);
    local.setUint32(22, bytes.length, true);
    local.setUint16(26, nameBytes.length, true);
    const entry = new DataView(new ArrayBuffer(46));
    entry.setUint32(0, 0x02014b50, true);
    entry.setUint16(4, 20, true);
    entry.setUint16(6, 20, true);
    entry.setUint16(8, 0x0800, true);
    entry.setUint32(16, crc, true);
    entry.setUint32(20, bytes.length, true);
    entry.setUint32(24, bytes.length, true);
    entry.setUint16(28, nameBytes.length, true);
    entry.setUint32(42, offset, true);
    parts.push(local, nameBytes, bytes);
    central.push(entry, nameBytes);
    offset += 30 + nameBytes.length + bytes.length;
  }
  const size = central.reduce((sum, part) => sum + part.byteLength, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, files.length, true);
  end.setUint16(10, files.length, true);
  end.setUint32(12, size, true);
  end.setUint32(16, offset, true);
  return new Blob([...parts, ...central, end], { type: "application/zip" });
}

function dataUrlBytes(url) {
  const binary = atob(url.slice(url.indexOf(",") + 1));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function downloadZip() {
  const used = new Set();
  const files = cards.map((card) => {
    let name = downloadName(card, card.selected);
    for (let n = 2; used.has(name); n++) name = name.replace(/(_\d+)?(\.[a-z]+)$/, `_${n}$2`);
    used.add(name);
    return { name, bytes: dataUrlBytes(card.results[card.selected].url) };
  });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(zipBlob(files));
  link.download = "memopainter.zip";
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

function setUp() {
  const zone = $("#drop-zone");
  $("#file-input").addEventListener("change", (event) => {
    colorizeFiles([...event.target.files]);
    event.target.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    colorizeFiles([...event.dataTransfer.files]);
  });
  $("#download-zip").addEventListener("click", downloadZip);
  $("#remember-form").addEventListener("submit", rememberReference);
  loadInfo();
}

setUp();
