"""MCP prompts: creating a structural tension chart with a person, and reviewing one (the moment of truth)."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from ..charts import Charts
from ..charts.markdown import chart_markdown

CREATE_CHART = """Help me create a structural tension chart (Robert Fritz){about}. Work with me one step at a time,
asking one question at a time, and only call create_chart once we agree on all of it.

1. Desired outcome first. Ask what I want to create, and help me state it as the result itself, specific
   enough that we will know when it exists ("A vegetable garden that feeds us from June to September"),
   not as a problem to remove ("get rid of the lawn") or a process ("work on the garden").
2. Then current reality, honestly and objectively: the facts of where things stand now relative to that
   outcome, including what is missing or not working. No wishful thinking, no "ready to" or "about to".
3. A due date for the outcome (ISO date).
4. Then the action steps that take me from current reality to the outcome, each with a due date if I
   have one (missing dates are spread up to the chart's due date). Big steps can later be telescoped
   into their own charts with telescope_action_step.

Use context {context!r} when you create it. Afterwards, show me the chart (get_chart) and the next step due."""

REVIEW = """Let's review this structural tension chart with Robert Fritz's "moment of truth": where I expected to be
versus where I am. Go through the four steps with me, one at a time, and wait for my answers.

1. Acknowledge: state plainly what has and has not happened since the chart was made, without blame or spin.
2. Analyse: how did it happen that way? Look at which steps moved the chart toward the outcome and which did not.
3. Plan: given what we learned, what changes: new or revised action steps, moved due dates, a restated outcome?
4. Feedback: how will we track whether the new plan is working (and when do we look again)?

Then record what we agreed: update_chart with the acknowledged facts, complete for finished steps,
add_action_steps / update_action_step / update_chart for the plan.

The chart as it stands:

{chart}"""


def register_prompts(server: MCPServer, charts: Charts) -> None:
    @server.prompt(
        name="create_chart",
        title="Create a structural tension chart",
        description="Walk a person through a new chart: desired outcome first, then current reality, then steps.",
    )
    def create_chart(topic: str = "", context: str = "default") -> str:
        return CREATE_CHART.format(about=f" about {topic}" if topic else "", context=context)

    @server.prompt(
        name="review_chart",
        title="Review a chart (moment of truth)",
        description="Fritz's moment of truth for an existing chart: acknowledge, analyse, plan, feedback.",
    )
    def review_chart(chartId: str) -> str:  # noqa: N803 - the argument agents see
        return REVIEW.format(chart=chart_markdown(charts.get_chart(chartId=chartId)))
