// Card and wallet payments: mounts Stripe Elements on the payment page and confirms the
// PaymentIntent with Stripe.js. With card only, the card element and confirmCardPayment; with
// wallets enabled too (Alipay, WeChat Pay), the Payment Element and confirmPayment, which may send
// the payer to the wallet and back to this page. The result is applied by the webhook; the page polls it.
(function () {
  var script = document.getElementById("payment-js");
  if (typeof Stripe === "undefined" || !script) { return; }
  var stripe = Stripe(script.dataset.publishableKey);
  var methods = (script.dataset.methods || "card").split(",");
  var mounted = null;

  function confirm(button, element, elements) {
    if (methods.length === 1 && methods[0] === "card") {
      return stripe.confirmCardPayment(button.dataset.secret, { payment_method: { card: element } });
    }
    return stripe.confirmPayment({ elements: elements, confirmParams: { return_url: location.href }, redirect: "if_required" });
  }

  function setUp() {
    var target = document.getElementById("card-element");
    var button = document.getElementById("card-submit");
    if (!target || !button || mounted === target) { return; }
    mounted = target;
    var cardOnly = methods.length === 1 && methods[0] === "card";
    var elements = cardOnly ? stripe.elements() : stripe.elements({ clientSecret: button.dataset.secret });
    var element = elements.create(cardOnly ? "card" : "payment");
    element.mount(target);
    button.addEventListener("click", function () {
      button.disabled = true;
      confirm(button, element, elements).then(function (result) {
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
    if (!status || !window.htmx || attempt > 30) { return; }
    if (attempt > 0 && status.dataset.waiting !== "1") { return; }
    htmx.ajax("GET", location.pathname.replace(/\/$/, "") + "/status", { target: status, swap: "outerHTML" })
      .then(function () { setTimeout(function () { poll(attempt + 1); }, 2000); });
  }
  setUp();
  if (new URLSearchParams(location.search).has("payment_intent")) { poll(0); }  // back from a wallet
  document.body.addEventListener("htmx:afterSwap", setUp);
})();
