/* Zendesk glue for the CareRoute ticket sidebar (ZAF v2, no build step).
   Reads the non-secure settings and the ticket id through ZAF, asks the CareRoute service for its
   assessment through client.request, and hands the answer to CareRouteView. The tenant token is a
   secure setting: the browser only ever holds the {{setting.tenant_token}} placeholder, which
   Zendesk's proxy fills in on its way to the service. */
(function () {
  'use strict';

  var View = window.CareRouteView;
  var LOCALES = window.CAREROUTE_LOCALES;
  var container = document.getElementById('careroute');
  var client = window.ZAFClient.init();
  var handlers = {};

  function resize() {
    var height = Math.min(Math.max(document.body.scrollHeight + 16, 120), 900);
    client.invoke('resize', { width: '100%', height: height + 'px' });
  }

  function show(model, labels) {
    View.render(model, container, labels, handlers, document);
    resize();
  }

  function fetchAssessment(url) {
    return client.request({
      url: url,
      type: 'GET',
      dataType: 'json',
      cors: false,
      secure: true,
      headers: { Authorization: 'Bearer {{setting.tenant_token}}' }
    }).then(function (body) {
      return View.classifyResponse(200, body);
    }, function (failure) {
      var status = failure && typeof failure.status === 'number' ? failure.status : 0;
      return View.classifyResponse(status, failure && (failure.responseJSON || failure.responseText));
    });
  }

  function ticketContext() {
    return Promise.all([client.metadata(), client.get(['ticket.id', 'currentUser.locale'])]).then(function (answers) {
      return {
        settings: answers[0].settings || {},
        ticketId: answers[1]['ticket.id'],
        labels: LOCALES[View.pickLanguage(answers[1]['currentUser.locale'], LOCALES)]
      };
    });
  }

  function assess(context) {
    var url = View.assessmentUrl(context.settings.service_url, 'zendesk', context.settings.tenant_id, context.ticketId);
    return url ? fetchAssessment(url) : Promise.resolve({ state: 'not_configured' });
  }

  function load() {
    return ticketContext().then(function (context) {
      show({ state: 'loading' }, context.labels);
      return assess(context).then(function (result) {
        show(View.buildModel(result), context.labels);
      });
    }).catch(function () {
      show({ state: 'failed' }, LOCALES.en);
    });
  }

  handlers.refresh = load;
  handlers.insert = function (html) {
    return client.invoke('ticket.editor.insert', html);
  };
  handlers.copy = function (text) {
    if (navigator.clipboard && navigator.clipboard.writeText) {
      return navigator.clipboard.writeText(text);
    }
    return Promise.reject(new Error('clipboard unavailable'));
  };

  client.on('app.registered', load);
}());
