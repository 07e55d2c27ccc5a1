/* CareRoute serverless handlers for Freshdesk (Freshworks platform 3.0).

   onAppInstall   registers this Freshdesk account with the CareRoute service (domain, API key,
                  a generated webhook secret, thresholds, trained group, tag prefix, tenant token);
                  the install is refused with a readable message when that fails.
   afterAppUpdate re-sends the settings after the admin moves to a new app version.
   onAppUninstall tells the service to stop; uninstalling is never blocked.
   onTicketCreate forwards only the ticket id: the service reads the text through the API itself.

   Privacy: handler arguments carry ticket text and secrets, so they are never logged. Log lines
   carry the event, the ticket id and HTTP status codes only. Every call goes through the request
   templates in config/requests.json, which hold the service host and the tokens. */

const crypto = require('crypto');

const WEBHOOK_SECRET_KEY = 'careroute_webhook_secret';
const TAG_PREFIX_PATTERN = /^[a-z0-9][a-z0-9_]{0,30}$/;

function settingsFrom(iparams) {
  const group = iparams.trained_group_id;
  const noGroup = group === undefined || group === null || String(group).trim() === '';
  return {
    thresholds: {
      concern: Number(iparams.concern_threshold),
      high: Number(iparams.high_threshold),
      imminent: Number(iparams.imminent_threshold)
    },
    trained_group_id: noGroup ? null : Number(group),
    tag_prefix: String(iparams.tag_prefix || 'careroute').trim()
  };
}

function isScore(value) {
  return Number.isFinite(value) && value >= 0 && value <= 1;
}

function thresholdsProblem(thresholds) {
  if (!isScore(thresholds.concern) || !isScore(thresholds.high) || !isScore(thresholds.imminent)) {
    return 'Thresholds must be numbers between 0 and 1.';
  }
  if (!(thresholds.concern < thresholds.high && thresholds.high < thresholds.imminent)) {
    return 'Thresholds must rise: concern below high, high below imminent.';
  }
  return null;
}

function groupProblem(group) {
  if (group === null || (Number.isInteger(group) && group > 0)) {
    return null;
  }
  return 'The trained group ID must be a whole number.';
}

function tagPrefixProblem(prefix) {
  if (TAG_PREFIX_PATTERN.test(prefix)) {
    return null;
  }
  return 'The tag prefix may use lowercase letters, digits and underscores, up to 31 characters.';
}

// Returns a message for the admin when the settings cannot work, else null.
function settingsProblem(settings) {
  return thresholdsProblem(settings.thresholds) || groupProblem(settings.trained_group_id) ||
    tagPrefixProblem(settings.tag_prefix);
}

function statusOf(error) {
  return error && Number.isInteger(error.status) ? error.status : 0;
}

// The request method rejects non-2xx answers; this also covers a platform that resolves them.
function ensureAccepted(response) {
  const status = response && Number.isInteger(response.status) ? response.status : 200;
  if (status < 200 || status > 299) {
    const error = new Error('CareRoute answered HTTP ' + status);
    error.status = status;
    throw error;
  }
  return response;
}

const FAILURE_MESSAGES = {
  401: 'CareRoute did not accept the {token}. Check it with your CareRoute operator.',
  403: 'CareRoute did not accept the {token}. Check it with your CareRoute operator.',
  404: 'CareRoute does not know this tenant ID. Check the tenant ID and the service host.',
  409: 'This tenant ID is already registered for another Freshdesk account.',
  400: 'CareRoute rejected these settings (HTTP 400). Check the thresholds, group and tag prefix.',
  422: 'CareRoute rejected these settings (HTTP 422). Check the thresholds, group and tag prefix.',
  0: 'CareRoute could not be reached. Try again in a few minutes.'
};

// What the admin reads when the service refused or could not be reached; never the service's own text.
function failureMessage(status, tokenName) {
  const message = FAILURE_MESSAGES[status] || 'CareRoute could not be reached (HTTP ' + status + '). Try again in a few minutes.';
  return message.replace('{token}', tokenName);
}

// The secret the service expects in X-CareRoute-Token on forwarded events; made once per install.
async function webhookSecret(createIfMissing) {
  try {
    const stored = await $db.get(WEBHOOK_SECRET_KEY);
    if (stored && typeof stored.secret === 'string' && stored.secret !== '') {
      return stored.secret;
    }
  } catch (error) {
    if (statusOf(error) !== 404) {
      throw error;
    }
  }
  if (!createIfMissing) {
    return null;
  }
  const secret = crypto.randomBytes(32).toString('base64url');
  await $db.set(WEBHOOK_SECRET_KEY, { secret: secret });
  return secret;
}

function ticketIdOf(args) {
  const ticket = args && args.data && args.data.ticket;
  const known = ticket && ticket.id !== undefined && ticket.id !== null;
  return known ? String(ticket.id) : '';
}

async function forwardTicket(ticketId, secret) {
  ensureAccepted(await $request.invokeTemplate('forwardTicketCreated', {
    context: { webhook_secret: secret },
    body: JSON.stringify({ ticket_id: ticketId, event: 'created' })
  }));
}

exports = {
  onAppInstallHandler: async function (args) {
    const iparams = (args && args.iparams) || {};
    const settings = settingsFrom(iparams);
    const problem = settingsProblem(settings);
    if (problem) {
      renderData({ message: problem });
      return;
    }
    try {
      const registration = {
        domain: iparams.domain,
        api_key: iparams.api_key,
        webhook_secret: await webhookSecret(true),
        thresholds: settings.thresholds,
        trained_group_id: settings.trained_group_id,
        tag_prefix: settings.tag_prefix,
        tenant_token: iparams.tenant_token
      };
      ensureAccepted(await $request.invokeTemplate('registerTenant', { body: JSON.stringify(registration) }));
      console.info('careroute: tenant registered');
      renderData();
    } catch (error) {
      console.error('careroute: tenant registration failed, status ' + statusOf(error));
      renderData({ message: failureMessage(statusOf(error), 'registration token') });
    }
  },

  afterAppUpdateHandler: async function (args) {
    const settings = settingsFrom((args && args.iparams) || {});
    const problem = settingsProblem(settings);
    if (problem) {
      renderData({ message: problem });
      return;
    }
    try {
      ensureAccepted(await $request.invokeTemplate('updateSettings', { body: JSON.stringify(settings) }));
      console.info('careroute: settings sent');
      renderData();
    } catch (error) {
      console.error('careroute: settings update failed, status ' + statusOf(error));
      renderData({ message: failureMessage(statusOf(error), 'tenant token') });
    }
  },

  onAppUninstallHandler: async function () {
    try {
      ensureAccepted(await $request.invokeTemplate('unregisterTenant', { body: JSON.stringify({}) }));
      console.info('careroute: tenant unregistered');
    } catch (error) {
      // An admin must always be able to remove the app; the service stops on its own once the
      // Freshdesk API key is revoked.
      console.error('careroute: unregister failed, status ' + statusOf(error));
    }
    renderData();
  },

  onTicketCreateHandler: async function (args) {
    const ticketId = ticketIdOf(args);
    if (ticketId === '') {
      console.error('careroute: ticket event without a ticket id');
      return;
    }
    try {
      const secret = await webhookSecret(false);
      if (secret === null) {
        console.error('careroute: no webhook secret stored; reinstall the app');
        return;
      }
      await forwardTicket(ticketId, secret);
      console.info('careroute: ticket ' + ticketId + ' forwarded');
    } catch (error) {
      console.error('careroute: forwarding ticket ' + ticketId + ' failed, status ' + statusOf(error));
    }
  }
};
