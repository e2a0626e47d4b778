import { render } from "preact";
import { App } from "./App";
import { start } from "./actions";
import { startPresence } from "./presence";
import "./style.css";

render(<App />, document.getElementById("app")!);
void start();
startPresence();
