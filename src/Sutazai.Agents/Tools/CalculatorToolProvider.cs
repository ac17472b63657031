using System.ComponentModel;
using Microsoft.Extensions.AI;

namespace Sutazai.Agents.Tools;

/// <summary>calculator_evaluate: exact arithmetic for the model, which is bad at it (see <see cref="Calculator"/>).</summary>
public sealed class CalculatorToolProvider : IToolProvider
{
    public string Name => "calculator";

    public string Description => "Evaluates arithmetic expressions exactly (decimal) or to double precision for functions.";

    public (bool Available, string? Reason) Health() => (true, null);

    public IReadOnlyList<AgentTool> Create(ToolContext context) =>
    [
        new(AIFunctionFactory.Create(
            ([Description("An arithmetic expression, e.g. 'round(sqrt(2) * 100, 2) + 15 % 4'.")] string expression) => Calculator.Evaluate(expression),
            "calculator_evaluate",
            "Evaluates + - * / % ^ with parentheses and unary minus, the functions sqrt abs round(x[, digits]) floor ceil " +
            "min max ln log10 sin cos tan (radians) and the constants pi and e. Errors name the position."),
            SideEffects: false, _ => ToolRisk.Low),
    ];
}
