/* Freshdesk glue for the CareRoute ticket sidebar (Freshworks platform 3.0, no build step).
   Takes only the ticket id and the agent's language from the page, asks the CareRoute service for
   its assessment through the getAssessment request template (config/requests.json holds the host
   and the tenant token, which the browser never sees), and hands the answer to CareRouteView. */
(function () {
  'use strict';

  var View = window.CareRouteView;
  var LOCALES = window.CAREROUTE_LOCALES;
  var container = document.getElementById('careroute');

  function copyText(text) {
    if (navigator.clipboard && navigator.clipboard.writeText) {
      return navigator.clipboard.writeText(text);
    }
    return Promise.reject(new Error('clipboard unavailable'));
  }

  function hasId(ticket) {
    return Boolean(ticket) && ticket.id !== undefined && ticket.id !== null;
  }

  // Everything that needs the platform client lives here, so no variable is assigned across scopes.
  function createSidebar(client) {
    var handlers = {
      insert: function (html) {
        return client.interface.trigger('click', { id: 'reply', text: html });
      },
      copy: copyText
    };

    function show(model, labels) {
      View.render(model, container, labels, handlers, document);
      var height = Math.min(Math.max(document.body.scrollHeight + 16, 120), 900);
      client.instance.resize({ height: height + 'px' });
    }

    function agentLanguage() {
      return client.data.get('loggedInUser').then(function (data) {
        var user = data && data.loggedInUser;
        return user && user.contact ? user.contact.language : null;
      }, function () {
        return null;
      });
    }

    function fetchAssessment(ticket) {
      if (!hasId(ticket)) {
        return Promise.resolve({ state: 'failed' });
      }
      return client.request.invokeTemplate('getAssessment', { context: { ticket_id: String(ticket.id) } })
        .then(function (answer) {
          return View.classifyResponse(answer.status, answer.response);
        }, function (failure) {
          var status = failure && typeof failure.status === 'number' ? failure.status : 0;
          return View.classifyResponse(status, failure && failure.response);
        });
    }

    function load() {
      return Promise.all([client.data.get('ticket'), agentLanguage()]).then(function (answers) {
        var labels = LOCALES[View.pickLanguage(answers[1], LOCALES)];
        show({ state: 'loading' }, labels);
        return fetchAssessment(answers[0] && answers[0].ticket).then(function (result) {
          show(View.buildModel(result), labels);
        });
      }).catch(function () {
        show({ state: 'failed' }, LOCALES.en);
      });
    }

    handlers.refresh = load;
    return load;
  }

  document.addEventListener('DOMContentLoaded', function () {
    window.app.initialized().then(function (client) {
      client.events.on('app.activated', createSidebar(client));
    }).catch(function () {
      View.render({ state: 'failed' }, container, LOCALES.en, {}, document);
    });
  });
}());
