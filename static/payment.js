// Card and wallet payments: mounts Stripe Elements on the payment page and confirms the
// PaymentIntent with Stripe.js. The result is applied by the webhook; the page polls it.
(function () {
  var script = document.getElementById("payment-js");
  if (typeof Stripe === "undefined" || !script) { return; }
  var stripe = Stripe(script.dataset.publishableKey);
  var mounted = null;

  function setUp() {
    var target = document.getElementById("card-element");
    var button = document.getElementById("card-submit");
    if (!target || !button || mounted === target) { return; }
    mounted = target;
    var card = stripe.elements().create("card");
    card.mount(target);
    button.addEventListener("click", function () {
      button.disabled = true;
      stripe.confirmCardPayment(button.dataset.secret, { payment_method: { card: card } }).then(function (result) {
        var status = document.getElementById("payment-status");
        if (result.error) {
          document.getElementById("card-errors").textContent = result.error.message || "支付失败，请重试";
          button.disabled = false;
        } else {
          button.textContent = "支付已提交，正在确认……";
          poll(0);
        }
      });
    });
  }
  // Until the webhook has been applied the payment still waits; ask again every 2 s (at most a minute).
  function poll(attempt) {
    var status = document.getElementById("payment-status");
    var state = document.getElementById("payment-state");
    if (!status || !window.htmx || attempt > 30) { return; }
    if (attempt > 0 && state && status.dataset.waiting !== "1") { return; }
    htmx.ajax("GET", location.pathname.replace(/\/$/, "") + "/status", { target: status, swap: "outerHTML" })
      .then(function () { setTimeout(function () { poll(attempt + 1); }, 2000); });
  }
  setUp();
  document.body.addEventListener("htmx:afterSwap", setUp);
})();
