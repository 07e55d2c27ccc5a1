/* CareRoute sidebar view: turns the service's assessment answer into what the agent sees.
   The same file ships in the Zendesk app (assets/) and the Freshdesk app (app/scripts/); only the
   platform glue (zaf-sidebar.js, freshdesk-sidebar.js) differs, and a test keeps the copies equal.
   Service data never goes through innerHTML: text is set with textContent, and the suggested reply
   is rebuilt from an allowlist before it is shown or inserted. The sidebar shows only what the
   service returned; it never reads the ticket's own text.
   Runs in a browser (window.CareRouteView) and in Node (module.exports), so it is tested without
   a browser. */
(function (root, factory) {
  'use strict';
  var api = factory();
  if (typeof module === 'object' && module.exports) {
    module.exports = api;
  } else {
    root.CareRouteView = api;
  }
}(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  var TIERS = ['none', 'concern', 'high', 'imminent'];
  var KNOWN_FLAGS = ['third_party', 'low_confidence', 'past', 'hypothetical', 'negated', 'quoted'];
  var REPLY_TAGS = { p: true, br: true, strong: true, b: true, em: true, i: true, ul: true, ol: true, li: true, a: true };
  // Elements whose content is dropped together with the element itself.
  var DROPPED_WITH_CONTENT = ['script', 'style', 'iframe', 'object', 'embed', 'template', 'noscript', 'textarea', 'title', 'svg', 'math'];
  var TAG_PATTERN = /<!--[\s\S]*?(?:-->|$)|<\/?[a-zA-Z][^>]*>/g;

  function isString(value) {
    return typeof value === 'string' && value.trim() !== '';
  }

  function pickLanguage(locale, locales) {
    var tag = String(locale || '').toLowerCase().replace('_', '-');
    if (Object.prototype.hasOwnProperty.call(locales, tag)) {
      return tag;
    }
    var base = tag.split('-')[0];
    return Object.prototype.hasOwnProperty.call(locales, base) ? base : 'en';
  }

  function translate(strings, key, values) {
    var text = Object.prototype.hasOwnProperty.call(strings, key) ? strings[key] : key;
    return text.replace(/\{\{(\w+)\}\}/g, function (whole, name) {
      return values && values[name] !== undefined ? String(values[name]) : whole;
    });
  }

  // http is accepted only for a service on this machine (development, the sandbox).
  function isServiceBase(base) {
    var match = /^(https?):\/\/([^\s/?#@]+)(\/[^\s?#]*)?$/i.exec(base);
    if (!match) {
      return false;
    }
    var host = match[2].toLowerCase().replace(/:\d+$/, '');
    return match[1].toLowerCase() === 'https' || host === 'localhost' || host === '127.0.0.1';
  }

  function hasValue(value) {
    return value !== undefined && value !== null && String(value).trim() !== '';
  }

  function assessmentUrl(serviceUrl, vendor, tenantId, ticketId) {
    var base = String(serviceUrl || '').trim().replace(/\/+$/, '');
    if (!isServiceBase(base) || !hasValue(tenantId) || !hasValue(ticketId)) {
      return null;
    }
    return base + '/api/v1/' + vendor + '/' + encodeURIComponent(String(tenantId).trim()) +
      '/tickets/' + encodeURIComponent(String(ticketId)) + '/assessment';
  }

  function parseBody(body) {
    if (typeof body === 'string') {
      try {
        return JSON.parse(body);
      } catch (error) {
        return null;
      }
    }
    return body && typeof body === 'object' ? body : null;
  }

  var STATE_BY_STATUS = { 0: 'unreachable', 401: 'unauthorized', 403: 'unauthorized', 502: 'unreachable', 503: 'unreachable', 504: 'unreachable' };

  function answerState(data) {
    return data && TIERS.indexOf(data.tier) !== -1 ? { state: 'assessment', assessment: data } : { state: 'failed' };
  }

  function isNotScreenedYet(code, data) {
    return code === 404 && Boolean(data) && data.error === 'no assessment';
  }

  // status: HTTP status of the service's answer (0 when the service could not be reached).
  function classifyResponse(status, body) {
    var code = Number(status) || 0;
    var data = parseBody(body);
    if (code >= 200 && code < 300) {
      return answerState(data);
    }
    if (isNotScreenedYet(code, data)) {
      return { state: 'no_assessment' };
    }
    return { state: STATE_BY_STATUS[code] || 'failed' };
  }

  function decodeEntities(text) {
    return text.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos|nbsp);/gi, function (whole, name) {
      var lower = name.toLowerCase();
      if (lower.charAt(0) === '#') {
        var code = lower.charAt(1) === 'x' ? parseInt(lower.slice(2), 16) : parseInt(lower.slice(1), 10);
        return code > 0 && code < 0x110000 ? String.fromCodePoint(code) : '';
      }
      return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' }[lower];
    });
  }

  function escapeHtml(text) {
    return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
  }

  function safeLink(raw) {
    var href = decodeEntities(String(raw || '')).replace(/[\u0000-\u0020]/g, '');
    return /^(https?:|mailto:|tel:|sms:)/i.test(href) ? href : null;
  }

  function hrefOf(attributes) {
    var match = /\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))/i.exec(attributes);
    return match ? safeLink(match[1] !== undefined ? match[1] : (match[2] !== undefined ? match[2] : match[3])) : null;
  }

  function skipDroppedContent(source, name, position) {
    var closer = new RegExp('</' + name + '\\b[^>]*>', 'ig');
    closer.lastIndex = position;
    return closer.exec(source) ? closer.lastIndex : source.length;
  }

  function closeUpTo(state, name) {
    var at = state.open.lastIndexOf(name);
    while (at !== -1 && state.open.length > at) {
      state.output.push('</' + state.open.pop() + '>');
    }
  }

  function openTag(state, name, attributes) {
    if (name === 'br') {
      state.output.push('<br>');
      return;
    }
    if (name === 'a') {
      var href = hrefOf(attributes);
      state.output.push(href ? '<a href="' + escapeHtml(href) + '" target="_blank" rel="noopener noreferrer">' : '<a>');
    } else {
      state.output.push('<' + name + '>');
    }
    state.open.push(name);
  }

  // Applies one tag (or comment) token; returns where scanning goes on.
  function applyTag(state, source, token, end) {
    if (token.slice(0, 4) === '<!--') {
      return end;
    }
    var parts = /^<(\/?)([a-zA-Z][a-zA-Z0-9]*)([\s\S]*)>$/.exec(token);
    var name = parts[2].toLowerCase();
    var closing = parts[1] === '/';
    if (!closing && DROPPED_WITH_CONTENT.indexOf(name) !== -1) {
      return skipDroppedContent(source, name, end);
    }
    if (REPLY_TAGS[name] && closing) {
      closeUpTo(state, name);
    } else if (REPLY_TAGS[name]) {
      openTag(state, name, parts[3]);
    }
    return end;
  }

  // Rebuilds the reply from allowlisted tags; everything else becomes escaped text or is dropped.
  function sanitizeReplyHtml(html) {
    var source = String(html || '');
    var state = { output: [], open: [] };
    var pattern = new RegExp(TAG_PATTERN.source, 'g');
    var position = 0;
    var match = pattern.exec(source);
    while (match !== null) {
      state.output.push(escapeHtml(decodeEntities(source.slice(position, match.index))));
      position = applyTag(state, source, match[0], pattern.lastIndex);
      pattern.lastIndex = position;
      match = pattern.exec(source);
    }
    state.output.push(escapeHtml(decodeEntities(source.slice(position))));
    closeUpTo(state, state.open[0]);
    return state.output.join('');
  }

  // Plain text of already sanitised HTML (for the preview and the copy button).
  function htmlToText(html) {
    var text = String(html || '')
      .replace(/<br>/g, '\n')
      .replace(/<\/(p|li|ul|ol)>/g, '\n\n')
      .replace(/<li>/g, '• ')
      .replace(/<[^>]*>/g, '');
    return decodeEntities(text).replace(/[ \t]+\n/g, '\n').replace(/\n{3,}/g, '\n\n').trim();
  }

  function strings(list) {
    return Array.isArray(list) ? list.filter(isString).map(function (item) { return item.trim(); }) : [];
  }

  function listOf(value) {
    return Array.isArray(value) ? value : [];
  }

  function trimmed(value) {
    return isString(value) ? value.trim() : null;
  }

  function webLink(value) {
    return isString(value) && /^https?:\/\//i.test(value.trim()) ? value.trim() : null;
  }

  function phoneLink(phone) {
    return phone && /\d/.test(phone) ? 'tel:' + phone.replace(/[^\d+]/g, '') : null;
  }

  function resourceOf(item) {
    if (!item || typeof item !== 'object' || !isString(item.service)) {
      return null;
    }
    var phone = trimmed(item.phone);
    return {
      service: item.service.trim(),
      phone: phone,
      phone_href: phoneLink(phone),
      sms: trimmed(item.sms),
      chat_url: webLink(item.chat_url),
      url: webLink(item.url),
      hours: trimmed(item.hours)
    };
  }

  function actionName(item) {
    if (item && typeof item === 'object') {
      return trimmed(item.type) || trimmed(item.action);
    }
    return trimmed(item);
  }

  function reasonsOf(data) {
    var categories = strings(data.categories);
    var labels = strings(data.category_labels);
    var readable = categories.map(function (item) { return item.replace(/_/g, ' '); });
    return labels.length && labels.length === categories.length ? labels : readable;
  }

  function flagsOf(data) {
    return strings(data.flags).map(function (flag) {
      return { id: flag, key: KNOWN_FLAGS.indexOf(flag) !== -1 ? 'flag_' + flag : null };
    });
  }

  function scoreOf(value) {
    return typeof value === 'number' && isFinite(value) ? Math.round(value * 100) / 100 : null;
  }

  function emergencyNumberOf(value) {
    return isString(value) && /^[\d+ ]{2,16}$/.test(value.trim()) ? value.trim() : null;
  }

  function replyOf(value) {
    if (!isString(value)) {
      return null;
    }
    var html = sanitizeReplyHtml(value);
    return { html: html, text: htmlToText(html) };
  }

  function checklistFor(tier) {
    return ['step_read', 'step_reply', 'step_original']
      .concat(tier === 'imminent' ? ['step_escalate'] : [])
      .concat(['step_break']);
  }

  function stateOnly(result) {
    return { state: result && result.state ? result.state : 'failed' };
  }

  // What the sidebar shows: only known fields of the answer, cleaned. Tier none shows no care section.
  function buildModel(result) {
    if (!result || result.state !== 'assessment') {
      return stateOnly(result);
    }
    var data = result.assessment;
    var flagged = data.tier !== 'none';
    return {
      state: 'assessment',
      tier: data.tier,
      score: scoreOf(data.score),
      decided_at: trimmed(data.decided_at),
      language: trimmed(data.language),
      reasons: reasonsOf(data),
      rule_ids: strings(data.rule_ids),
      flags: flagsOf(data),
      actions: listOf(data.actions).map(actionName).filter(Boolean),
      resources: flagged ? listOf(data.resources).map(resourceOf).filter(Boolean) : [],
      emergency_number: flagged ? emergencyNumberOf(data.emergency_number) : null,
      reply: flagged ? replyOf(data.suggested_reply_html) : null,
      checklist: flagged ? checklistFor(data.tier) : []
    };
  }

  // ------------------------------------------------------------------ rendering (DOM, textContent only)

  function element(doc, tag, className, text) {
    var node = doc.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function link(doc, href, text) {
    var node = element(doc, 'a', null, text);
    node.href = href;
    node.target = '_blank';
    node.rel = 'noopener noreferrer';
    return node;
  }

  function section(doc, container, title) {
    var node = element(doc, 'section', 'section');
    node.appendChild(element(doc, 'h2', null, title));
    container.appendChild(node);
    return node;
  }

  function list(doc, parent, items, tag, className) {
    var node = element(doc, tag || 'ul', className);
    items.forEach(function (item) {
      node.appendChild(element(doc, 'li', null, item));
    });
    parent.appendChild(node);
    return node;
  }

  function renderWhy(doc, container, model, t) {
    if (!model.reasons.length && !model.rule_ids.length && !model.flags.length) {
      return;
    }
    var why = section(doc, container, t('why'));
    if (model.reasons.length) {
      list(doc, why, model.reasons);
    }
    if (model.rule_ids.length) {
      why.appendChild(element(doc, 'h3', null, t('rules')));
      list(doc, why, model.rule_ids, 'ul', 'codes');
    }
    if (model.flags.length) {
      why.appendChild(element(doc, 'h3', null, t('notes')));
      list(doc, why, model.flags.map(function (flag) { return flag.key ? t(flag.key) : flag.id; }));
    }
  }

  function renderResources(doc, container, model, t) {
    if (!model.resources.length && !model.emergency_number) {
      return;
    }
    var box = section(doc, container, t('resources'));
    if (model.emergency_number) {
      box.appendChild(element(doc, 'p', 'emergency', t('emergency', { number: model.emergency_number })));
    }
    var entries = element(doc, 'ul', 'resources');
    model.resources.forEach(function (resource) {
      var item = element(doc, 'li');
      item.appendChild(element(doc, 'strong', null, resource.service));
      var details = element(doc, 'ul', 'details');
      if (resource.phone) {
        var phone = element(doc, 'li', null, t('phone') + ': ');
        phone.appendChild(resource.phone_href ? link(doc, resource.phone_href, resource.phone) : doc.createTextNode(resource.phone));
        details.appendChild(phone);
      }
      if (resource.sms) {
        details.appendChild(element(doc, 'li', null, t('sms') + ': ' + resource.sms));
      }
      [['chat', resource.chat_url], ['website', resource.url]].forEach(function (pair) {
        if (pair[1]) {
          var row = element(doc, 'li');
          row.appendChild(link(doc, pair[1], t(pair[0])));
          details.appendChild(row);
        }
      });
      if (resource.hours) {
        details.appendChild(element(doc, 'li', null, t('hours') + ': ' + resource.hours));
      }
      item.appendChild(details);
      entries.appendChild(item);
    });
    box.appendChild(entries);
  }

  function actionButton(doc, label, run, status, t, doneKey) {
    var button = element(doc, 'button', 'button', label);
    button.type = 'button';
    button.addEventListener('click', function () {
      status.textContent = '';
      Promise.resolve().then(run).then(function () {
        status.textContent = t(doneKey);
      }, function () {
        status.textContent = t('action_failed');
      });
    });
    return button;
  }

  function renderReply(doc, container, model, t, handlers) {
    if (!model.reply || !model.reply.text) {
      return;
    }
    var box = section(doc, container, t('reply'));
    box.appendChild(element(doc, 'p', 'hint', t('reply_hint')));
    var preview = element(doc, 'div', 'reply');
    model.reply.text.split(/\n{2,}/).forEach(function (paragraph) {
      preview.appendChild(element(doc, 'p', null, paragraph));
    });
    box.appendChild(preview);
    var status = element(doc, 'p', 'status');
    status.setAttribute('aria-live', 'polite');
    var buttons = element(doc, 'div', 'buttons');
    if (handlers.insert) {
      buttons.appendChild(actionButton(doc, t('insert'), function () { return handlers.insert(model.reply.html); }, status, t, 'inserted'));
    }
    if (handlers.copy) {
      buttons.appendChild(actionButton(doc, t('copy'), function () { return handlers.copy(model.reply.text); }, status, t, 'copied'));
    }
    box.appendChild(buttons);
    box.appendChild(status);
  }

  function renderHeader(doc, container, model, t, handlers) {
    var header = element(doc, 'header', 'header');
    header.appendChild(element(doc, 'h1', null, t('title')));
    if (handlers.refresh && model.state !== 'loading') {
      var refresh = element(doc, 'button', 'link-button', t('refresh'));
      refresh.type = 'button';
      refresh.addEventListener('click', handlers.refresh);
      header.appendChild(refresh);
    }
    container.appendChild(header);
  }

  function factsOf(model, t) {
    var facts = [];
    if (model.score !== null) {
      facts.push(t('score') + ': ' + model.score.toFixed(2));
    }
    if (model.decided_at) {
      facts.push(t('assessed_at') + ': ' + model.decided_at);
    }
    if (model.language) {
      facts.push(t('language') + ': ' + model.language);
    }
    return facts;
  }

  function renderAssessment(doc, container, model, t, handlers) {
    var tier = element(doc, 'div', 'tier tier-' + model.tier);
    tier.appendChild(element(doc, 'strong', null, t('tier_' + model.tier)));
    tier.appendChild(element(doc, 'p', null, t('tier_hint_' + model.tier)));
    container.appendChild(tier);
    var facts = factsOf(model, t);
    if (facts.length) {
      list(doc, container, facts, 'ul', 'facts');
    }
    renderWhy(doc, container, model, t);
    if (model.checklist.length) {
      list(doc, section(doc, container, t('checklist')), model.checklist.map(function (key) { return t(key); }), 'ol');
    }
    renderResources(doc, container, model, t);
    renderReply(doc, container, model, t, handlers);
    if (model.actions.length) {
      list(doc, section(doc, container, t('actions')), model.actions, 'ul', 'codes');
    }
  }

  // Draws `model` into `container` with textContent only; `labels` are the agent's strings.
  function render(model, container, labels, handlers, doc) {
    var t = function (key, values) { return translate(labels, key, values); };
    var callbacks = handlers || {};
    while (container.firstChild) {
      container.removeChild(container.firstChild);
    }
    renderHeader(doc, container, model, t, callbacks);
    if (model.state === 'assessment') {
      renderAssessment(doc, container, model, t, callbacks);
    } else {
      container.appendChild(element(doc, 'p', 'message message-' + model.state, t(model.state)));
    }
    return container;
  }

  return {
    TIERS: TIERS,
    pickLanguage: pickLanguage,
    translate: translate,
    assessmentUrl: assessmentUrl,
    classifyResponse: classifyResponse,
    sanitizeReplyHtml: sanitizeReplyHtml,
    htmlToText: htmlToText,
    buildModel: buildModel,
    render: render
  };
}));
