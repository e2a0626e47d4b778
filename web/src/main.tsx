import { render } from "preact";
import { App } from "./App";
import { start } from "./actions";
import { startPresence } from "./presence";
import { startWorker } from "./pwa";
import "./style.css";

render(<App />, document.getElementById("app")!);
startWorker();
void start();
startPresence();
