// The notifications panel (the bell in the sidebar): turn pushes on for this device, see every device that
// gets them and how the last push went, send a test, delete one. On iPhone and iPad outside the Home Screen
// app it explains what to do instead: Safari delivers pushes only to an app added to the Home Screen.
import { ago } from "./App";
import { P, enable, environment, openPanel, pushSupport, remove, sendTest } from "./push";

export function Notifications() {
  if (!P.open) return null;
  const support = pushSupport(environment());
  const permission = support === "ok" ? Notification.permission : "default";
  return (
    <div class="picker" data-testid="notifications">
      <div class="picker-head">
        <span>notifications</span>
        <button class="icon" aria-label="close" onClick={() => openPanel(false)}>
          ×
        </button>
      </div>
      <div class="pad push-panel">
        {support === "ios-home-screen" && (
          <p data-testid="ios-home-screen">
            On iPhone and iPad, notifications need dancodes on the Home Screen (iOS 16.4 or later): tap Share, then
            “Add to Home Screen”, and open it from there.
          </p>
        )}
        {support === "unsupported" && <p data-testid="push-unsupported">This browser cannot receive push notifications.</p>}
        {support === "ok" && (
          <p>
            {P.mine ? (
              <span data-testid="push-on">This device gets a notification when a chat finishes, fails or waits for you.</span>
            ) : (
              <button data-testid="enable-push" disabled={!!P.busy || permission === "denied"} onClick={() => void enable()}>
                notify this device
              </button>
            )}
            {permission === "denied" && <span class="dim"> notifications are blocked for this site in the browser's settings</span>}
          </p>
        )}
        <p class="dim">Nothing is pushed while the app is open in front on one of your devices.</p>
        <ul class="devices">
          {P.devices.map((d) => {
            const r = P.results.find((x) => x.id === d.id);
            const last = d.last_delivery;
            return (
              <li key={d.id} data-testid="push-device" data-id={d.id}>
                <span>
                  {d.device}
                  {d.id === P.mine && <span class="dim"> (this device)</span>}
                </span>
                <span class={"dim" + (last && !last.ok ? " err" : "")}>
                  {r ? r.message : last ? `${ago(last.at * 1000)} ago: ${last.message}` : `added ${ago(d.created * 1000)} ago`}
                </span>
                <button class="danger" disabled={!!P.busy} onClick={() => void remove(d)} data-testid="delete-push-device">
                  delete
                </button>
              </li>
            );
          })}
        </ul>
        {P.devices.length === 0 && <p class="dim">No device gets notifications yet.</p>}
        <button data-testid="send-test-push" disabled={!!P.busy || P.devices.length === 0} onClick={() => void sendTest()}>
          send a test
        </button>
        {P.busy && <p class="dim">{P.busy}…</p>}
        {P.message && (
          <p data-testid="push-message" role="status">
            {P.message}
          </p>
        )}
      </div>
    </div>
  );
}
