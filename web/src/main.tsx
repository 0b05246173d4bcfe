import { createRoot } from 'react-dom/client';
import { App } from './App';
import './styles.css';
import { followSystemTheme } from './theme';

followSystemTheme();

createRoot(document.getElementById('root')!).render(<App />);
