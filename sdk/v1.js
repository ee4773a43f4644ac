/*! aftercart checkout SDK v1 (Apache-2.0). Served by aftercart at /sdk/v1.js; a released
 * version never changes, so pages can pin it with Subresource Integrity. No dependencies.
 *
 *   aftercart.render({placement, channel, transaction, customer, consent, context, slots,
 *                     element, endpoint, timeout, key, locale, headingLevel, styles, text})
 *
 * asks aftercart for the offers of this order, shows them in `element`, counts an
 * impression once an offer has been at least half visible for one continuous second
 * (the MRC display rule), sends clicks through the tracking URL, and lets a shopper buy
 * a product offer in place. It never breaks the page: on a timeout, an error or no fill
 * the element is left as it was, with one console warning, and the promise it returns
 * resolves (to the number of offers shown) rather than rejects.
 */
(() => {
  'use strict';

  const DEFAULT_TIMEOUT_MS = 1500;
  // A purchase is worth waiting for longer than an ad: the shopper pressed a button.
  const PURCHASE_TIMEOUT_MS = 10000;
  // The MRC display viewability rule: half the pixels, one continuous second.
  const VIEWABLE_RATIO = 0.5;
  const VIEWABLE_MS = 1000;

  const TEXT = {
    label: 'Sponsored',
    section: 'Sponsored offers',
    more: 'Learn more',
    newTab: '(opens in a new tab)',
    buy: 'Buy now',
    inStock: 'In stock',
    left: (n) => `Only ${n} left`,
    outOfStock: 'Out of stock',
    buying: 'Placing your order…',
    bought: 'Bought',
    thanks: (order, name, total) => `Thank you! Order ${order} is placed: ${name}, ${total}.`,
    soldOut: 'Sorry, this item has just sold out. You have not been charged.',
    already: 'You have already bought this item.',
    expired: 'Sorry, this offer has expired.',
    failed: 'Sorry, your order could not be placed and you have not been charged. Please try again.',
    unreachable: 'We could not reach the shop. Please try again: you cannot be charged twice.',
  };

  const STYLE =
    '.aftercart{display:grid;gap:12px;grid-template-columns:repeat(auto-fit,minmax(220px,1fr))}' +
    '.aftercart-offer{display:flex;flex-direction:column;gap:6px;padding:12px;border:1px solid #d0d4da;border-radius:8px;background:#fff;color:#1a1d21;overflow-wrap:anywhere}' +
    '.aftercart-offer>*{margin:0}.aftercart-offer img{width:100%;height:auto;max-height:200px;object-fit:contain;border-radius:4px}' +
    '.aftercart-label{font-size:.75em;color:#545d69;text-transform:uppercase;letter-spacing:.05em}' +
    '.aftercart-price{font-weight:600}.aftercart-actions{display:flex;flex-wrap:wrap;gap:8px;margin-top:auto}' +
    '.aftercart-cta,.aftercart-buy{padding:8px 12px;border:1px solid #1b5fd1;border-radius:6px;font:inherit;text-decoration:none;cursor:pointer}' +
    '.aftercart-cta{color:#1b5fd1;background:#fff}.aftercart-buy{color:#fff;background:#1b5fd1}' +
    '.aftercart-buy:disabled{opacity:.6;cursor:default}' +
    '.aftercart-sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}';

  // The server this script came from answers decisions unless the page names another.
  let home = '';
  try {
    home = new URL(document.currentScript.src).origin;
  } catch (e) {
    // Inlined or bundled: the page must pass `endpoint`.
  }

  let ids = 0;

  /** A message: a string, or a function of the details (so pages can translate both). */
  const say = (m, ...args) => (typeof m === 'function' ? m(...args) : String(m));

  /** An element with attributes (in order: `referrerpolicy` must precede `src`) and children. */
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) if (v != null) e.setAttribute(k, v);
    for (const c of children) if (c != null) e.append(c);
    return e;
  }

  /** An http(s) URL as given, or null: a creative must not smuggle `javascript:` in. */
  function safeUrl(u) {
    try {
      return /^https?:$/.test(new URL(u).protocol) ? u : null;
    } catch (e) {
      return null;
    }
  }

  async function sha256Hex(s) {
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(s));
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
  }

  /** POSTs JSON and reads the answer, all within `ms`. */
  async function post(url, body, ms, key) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), ms);
    try {
      const headers = { 'Content-Type': 'application/json' };
      if (key) headers['X-Aftercart-Key'] = key;
      const res = await fetch(url, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        signal: abort.signal,
        credentials: 'omit',
        referrerPolicy: 'no-referrer',
      });
      const text = await res.text();
      let data = null;
      try {
        data = JSON.parse(text);
      } catch (e) {
        // An empty or non-JSON body: the status says enough.
      }
      return { status: res.status, data };
    } finally {
      clearTimeout(timer);
    }
  }

  /** The decision request: the caller's fields, the e-mail hashed here, GPC honoured. */
  async function decisionBody(o, warn) {
    const body = { placement: o.placement, channel: o.channel || 'online', transaction: o.transaction };
    if (o.slots != null) body.slots = o.slots;
    if (o.context != null) body.context = o.context;
    const consent = Object.assign({}, o.consent);
    // A browser with Global Privacy Control on has said no to personalisation.
    if (navigator.globalPrivacyControl === true) consent.personalization = false;
    if (Object.keys(consent).length) body.consent = consent;
    if (o.customer) {
      const customer = Object.assign({}, o.customer);
      if (customer.ids) {
        const ids = Object.assign({}, customer.ids);
        const email = ids.email;
        // The raw address never leaves the browser, hashed or not.
        delete ids.email;
        if (typeof email === 'string' && email.trim() && !ids.email_sha256) {
          if (window.crypto && crypto.subtle) {
            ids.email_sha256 = await sha256Hex(email.trim().toLowerCase());
          } else {
            warn('the e-mail was left out: hashing it needs a secure (https) page');
          }
        }
        customer.ids = ids;
      }
      body.customer = customer;
    }
    return body;
  }

  /** Counts an impression once `el` has been half visible for one continuous second. */
  function watch(el, url) {
    if (!url || !('IntersectionObserver' in window)) return;
    let timer = 0;
    let visible = false;
    const stop = () => {
      clearTimeout(timer);
      timer = 0;
    };
    const start = () => {
      if (!timer && visible && document.visibilityState === 'visible') timer = setTimeout(fire, VIEWABLE_MS);
    };
    // A hidden tab is not seen, whatever its layout says.
    const onVisibility = () => (document.visibilityState === 'visible' ? start() : stop());
    const io = new IntersectionObserver(
      (entries) => {
        for (const e of entries) visible = e.isIntersecting && e.intersectionRatio >= VIEWABLE_RATIO;
        visible ? start() : stop();
      },
      { threshold: VIEWABLE_RATIO },
    );
    function fire() {
      io.disconnect();
      document.removeEventListener('visibilitychange', onVisibility);
      // keepalive: the beacon still goes out if the shopper leaves right now.
      fetch(url, { method: 'POST', mode: 'no-cors', keepalive: true, credentials: 'omit', referrerPolicy: 'no-referrer' }).catch(() => {});
    }
    io.observe(el);
    document.addEventListener('visibilitychange', onVisibility);
  }

  function money(amount, currency, locale) {
    try {
      return new Intl.NumberFormat(locale, { style: 'currency', currency }).format(amount);
    } catch (e) {
      return `${currency || ''} ${Number(amount).toFixed(2)}`.trim();
    }
  }

  function offerCard(offer, o, t) {
    const id = `aftercart-${++ids}`;
    const product = offer.product && typeof offer.product === 'object' ? offer.product : null;
    const tracking = offer.tracking || {};
    const price = product ? money(product.price, product.currency, o.locale) : '';
    const card = h('article', { class: 'aftercart-offer', 'aria-labelledby': id, 'data-slot': offer.slot });
    card.append(h('p', { class: 'aftercart-label' }, t.label));
    const src = safeUrl(offer.image_url);
    if (src) {
      const alt = product ? product.name : offer.headline;
      const img = h('img', { referrerpolicy: 'no-referrer', loading: 'lazy', decoding: 'async', alt, src });
      // A missing picture should not leave a broken-image icon in a shop's page.
      img.addEventListener('error', () => img.remove());
      card.append(img);
    }
    const level = o.headingLevel >= 2 && o.headingLevel <= 6 ? o.headingLevel : 3;
    card.append(h(`h${level}`, { id, class: 'aftercart-headline' }, offer.headline));
    if (offer.body) card.append(h('p', { class: 'aftercart-body' }, offer.body));
    let stock = null;
    if (product) {
      card.append(h('p', { class: 'aftercart-price' }, price));
      const n = product.stock;
      stock = h('p', { class: 'aftercart-stock' }, typeof n === 'number' && n <= 5 ? say(t.left, n) : t.inStock);
      card.append(stock);
    }
    const actions = h('div', { class: 'aftercart-actions' });
    const click = safeUrl(tracking.click);
    if (click) {
      // noreferrer: the advertiser never learns the confirmation page's URL.
      const cta = h('a', { class: 'aftercart-cta', href: click, target: '_blank', rel: 'noopener noreferrer' }, offer.cta || t.more);
      cta.append(h('span', { class: 'aftercart-sr' }, ` ${t.newTab}`));
      actions.append(cta);
    }
    const purchase = product && safeUrl(tracking.purchase);
    if (purchase) {
      const button = h('button', { type: 'button', class: 'aftercart-buy', 'aria-label': `${t.buy}: ${product.name}, ${price}` }, t.buy);
      // A live region must be in the page before its text changes to be announced.
      const status = h('p', { class: 'aftercart-status', role: 'status', 'aria-live': 'polite' });
      button.addEventListener('click', () => buy(purchase, button, status, stock, product, o, t));
      actions.append(button);
      card.append(actions, status);
    } else {
      card.append(actions);
    }
    return card;
  }

  async function buy(url, button, status, stock, product, o, t) {
    button.disabled = true;
    status.textContent = t.buying;
    let r;
    try {
      r = await post(url, { quantity: 1 }, PURCHASE_TIMEOUT_MS, o.key);
    } catch (e) {
      r = { status: 0, data: null };
    }
    const code = r.data && r.data.error && r.data.error.code;
    if (r.status === 201 && r.data) {
      status.textContent = say(t.thanks, r.data.order_id, product.name, money(r.data.total, product.currency, o.locale));
      button.textContent = t.bought;
    } else if (code === 'out_of_stock') {
      status.textContent = t.soldOut;
      if (stock) stock.textContent = t.outOfStock;
    } else if (code === 'already_purchased') {
      status.textContent = t.already;
    } else if (code === 'offer_expired') {
      status.textContent = t.expired;
    } else {
      // Safe to retry: the server takes one purchase per offer at most.
      status.textContent = r.status === 0 ? t.unreachable : t.failed;
      button.disabled = false;
    }
  }

  function why(e, ms) {
    if (e && e.name === 'AbortError') return `no answer within ${ms} ms`;
    if (e instanceof TypeError) return 'the ad server could not be reached';
    return String((e && e.message) || e);
  }

  async function render(options) {
    let warned = false;
    const warn = (msg) => {
      if (!warned) {
        warned = true;
        console.warn(`aftercart: ${msg}`);
      }
    };
    const o = options || {};
    const ms = o.timeout > 0 ? o.timeout : DEFAULT_TIMEOUT_MS;
    try {
      const el = typeof o.element === 'string' ? document.querySelector(o.element) : o.element;
      if (!el || el.nodeType !== 1) return warn('no element to render into'), 0;
      const endpoint = String(o.endpoint || home).replace(/\/+$/, '');
      if (!endpoint) return warn('no endpoint: load the SDK from aftercart or pass `endpoint`'), 0;
      const body = await decisionBody(o, warn);
      const r = await post(`${endpoint}/v1/decisions`, body, ms, o.key);
      if (r.status !== 200 || !r.data) {
        const code = r.data && r.data.error ? ` ${r.data.error.code}: ${r.data.error.message}` : '';
        return warn(`no offer: the ad server answered ${r.status}${code}`), 0;
      }
      const offers = Array.isArray(r.data.offers) ? r.data.offers : [];
      if (!offers.length) return warn('no offer for this order (no fill)'), 0;
      const t = Object.assign({}, TEXT, o.text);
      if (o.styles !== false && !document.getElementById('aftercart-style')) {
        document.head.append(h('style', { id: 'aftercart-style' }, STYLE));
      }
      const section = h('section', { class: 'aftercart', 'aria-label': t.section });
      const cards = offers.map((offer) => offerCard(offer, o, t));
      section.append(...cards);
      el.replaceChildren(section);
      // Watched only once in the page, so layout decides what is seen.
      cards.forEach((card, i) => watch(card, safeUrl((offers[i].tracking || {}).impression)));
      return offers.length;
    } catch (e) {
      warn(`no offer: ${why(e, ms)}`);
      return 0;
    }
  }

  // Calls queued before the script loaded (`window.aftercart = [options, …]`) run now.
  const queued = Array.isArray(window.aftercart) ? window.aftercart : [];
  window.aftercart = { version: '1', render, push: render };
  queued.forEach(render);
})();
