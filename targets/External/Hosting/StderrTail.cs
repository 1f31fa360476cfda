using System.Text;

namespace EptFuzz.Targets.External.Hosting;

/// <summary>The last few KiB a target wrote to stderr: put into every finding it causes.</summary>
internal sealed class StderrTail
{
    public const int Capacity = 4096;
    private readonly StringBuilder text = new();
    private readonly object gate = new();

    public void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (gate)
        {
            text.Append(line).Append('\n');
            if (text.Length > Capacity)
            {
                text.Remove(0, text.Length - Capacity);
            }
        }
    }

    public void Clear()
    {
        lock (gate)
        {
            text.Clear();
        }
    }

    public override string ToString()
    {
        lock (gate)
        {
            return text.ToString();
        }
    }
}
