// xhrsse browser client, the entry module: it makes the page's parts, hands
// each the others it needs, and starts them. One EventSource per session
// carries everything the server pushes; fetch POSTs steer it
// (docs/PROTOCOL.md). Plain ES modules, no build step. Untrusted text (chat,
// channel characters and lines, file names, server error messages) only ever
// reaches the page through textContent or text nodes, never as markup.
//
// Where each feature lives (each module owns its state; the others call its
// functions):
//
//   connection.js  the session and its EventSource: opening, resuming,
//                  reconnecting, and which part each event is for
//   status.js      the header: stream state, session, this tab's role, the
//                  page-wide error, the connection log
//   channels.js    which channels this tab shows, and tuning the session
//   card.js        one channel's card: toggle, ticker box or published list
//   published.js   a published channel's list of lines, made inert
//   chat.js        the chat log and form
//   bulk.js        a bulk transfer: request, chunks, sha256 check, download
//   held.js        bulk chunks that arrive before their POST's answer
//   sha256.js      SHA-256 where Web Crypto is missing
//   tabs.js        the tabs of the origin sharing one session and stream:
//                  what they say to each other, who leads
//   share.js       the Web Locks and BroadcastChannel under tabs.js
//   api.js         one JSON request, error text, retry delays
//   dom.js         finding elements, error lines, once-a-frame drawing
//
// The tabs share one session and one stream: the leader tab holds the
// EventSource and relays every event to the others; every tab POSTs for
// itself. Each tab keeps its own view: the channels it shows (the session is
// tuned to the union of all tabs' wishes) and its own bulk transfer (chunks
// carry their transfer id).

import { RETRY_MAX_MS, RETRY_MS, api, errorText, sleep } from './api.js';
import { Bulk } from './bulk.js';
import { Channels } from './channels.js';
import { Chat } from './chat.js';
import { Connection } from './connection.js';
import { Status } from './status.js';
import { Tabs } from './tabs.js';

const status = new Status();
const tabs = new Tabs(status);
// The panels ask the connection for the session when they POST: session()
// is called only once the page runs, after conn exists.
const session = () => conn.session;
const channels = new Channels(session, tabs);
const chat = new Chat(session);
const bulk = new Bulk(session);
const conn = new Connection({ status, tabs, channels, chat, bulk });

async function main() {
  status.onReconnect(() => {
    if (tabs.role === 'follower') tabs.askReconnect();
    else conn.reattach('connecting');
  });
  window.addEventListener('pagehide', () => {
    conn.close();
    tabs.leave();
  });
  window.addEventListener('pageshow', (e) => {
    // Back from the back/forward cache: the stream was closed on pagehide.
    if (!e.persisted) return;
    if (tabs.role === 'follower') tabs.hello();
    else conn.reattach('reconnecting');
  });
  conn.setState('connecting');

  let delay = RETRY_MS;
  for (;;) {
    try {
      channels.build(await api('GET', 'channels'));
      status.clearError();
      break;
    } catch (err) {
      status.showError(`cannot list channels: ${errorText(err)}`);
      await sleep(delay);
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    }
  }
  api('GET', 'files').then((files) => bulk.addFiles(files), (err) => bulk.showError(`cannot list files: ${errorText(err)}`));
  if (await tabs.join({ conn, channels, chat, bulk })) await conn.open(false);
}

main().catch((err) => status.showError(errorText(err)));
